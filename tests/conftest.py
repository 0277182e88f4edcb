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
