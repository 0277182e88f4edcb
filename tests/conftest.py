"""Shared pytest set-up: the --update-golden switch and the real-service fixtures."""

from __future__ import annotations

import pytest

# Fixtures for the real PostgreSQL, Redis and a local aiohttp server live in tests/services.py.
pytest_plugins = ["services"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden/<case>/expected.py (and expected_envelope.json) from the compiler's output",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def write_workflow(tmp_path):
    """Write a workflow file (dedented) into a temp dir and return its path."""
    import textwrap

    def write(source: str, name: str = "workflow.py") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source).lstrip("\n"))
        return str(path)

    return write


@pytest.fixture
def kflowc():
    """Run `kflowc` in-process (click's runner) and return (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from kflow.cli import cli

    def invoke(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke
