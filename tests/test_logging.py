"""Logging from node code (issue 14.3): a generated module run as a script logs to stderr
at --log-level / KFLOW_LOG_LEVEL (WARNING by default); imported, it configures nothing;
node code's `logging.getLogger(__name__)` is named `kflow.<workflow>.<node>`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# The guide's "Monitoring and Logging" example, with a second node logging at INFO.
WORKFLOW = '''
import logging
import time
from kailash.workflow import AsyncWorkflowBuilder

logging.basicConfig(level=logging.INFO)
logger = logging.getLogger(__name__)
builder = AsyncWorkflowBuilder("monitoring")

# Add monitoring to workflows
builder.add_async_code(
    "monitored_operation",
    """
    import time
    import logging

    start_time = time.time()
    logger = logging.getLogger(__name__)

    try:
        # Your operation here
        response = await some_operation()

        # Log success metrics
        duration = time.time() - start_time
        logger.info(f"Operation completed in {duration:.2f}s")

        result = {
            "success": True,
            "duration": duration,
            "data": response
        }

    except Exception as e:
        duration = time.time() - start_time
        logger.error(f"Operation failed after {duration:.2f}s: {e}")
        raise
    """
)
builder.add_async_code("hello", "logging.getLogger(__name__).info('hello %s', who)\\nresult = 1")
workflow = builder.build()
'''


@pytest.fixture
def module(kflowc, write_workflow, tmp_path):
    path = write_workflow(WORKFLOW)
    out = tmp_path / "monitoring_out.py"
    code, _, stderr = kflowc("build", path, "-o", str(out))
    assert code == 0, stderr
    return out


def script(module, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "KFLOW_LOG_LEVEL"}
    return subprocess.run([sys.executable, str(module), "--inputs",
                           '{"some_operation": null, "who": "you"}', *args],
                          capture_output=True, text=True, check=False,
                          env={**environ, **(env or {})})


def log_lines(stderr: str) -> list[str]:
    """The records' "LEVEL name: message" parts (the time stamp dropped)."""
    return [line.split(" ", 2)[2] for line in stderr.splitlines() if line[:2] == "20"]


def test_node_loggers_have_readable_names(module):
    text = module.read_text()
    assert 'logger = logging.getLogger("kflow.monitoring.monitored_operation")' in text
    assert "logging.getLogger(\"kflow.monitoring.hello\").info('hello %s', who)" in text


def test_a_script_logs_warnings_and_errors_by_default(module):
    done = script(module)
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "failed"  # stdout is the envelope alone
    lines = log_lines(done.stderr)
    assert len(lines) == 1
    assert lines[0].startswith("ERROR kflow.monitoring.monitored_operation: Operation failed "
                               "after ")
    assert lines[0].endswith("s: 'NoneType' object is not callable")


def test_log_level_flag_and_environment_variable(module):
    for done in (script(module, "--log-level", "info"),
                 script(module, env={"KFLOW_LOG_LEVEL": "INFO"})):
        assert "INFO kflow.monitoring.hello: hello you" in log_lines(done.stderr)
    quiet = script(module, "--log-level", "CRITICAL")
    assert log_lines(quiet.stderr) == []
    bad = script(module, env={"KFLOW_LOG_LEVEL": "loud"})
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1].endswith(
        "error: argument --log-level: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL "
        "(from --log-level or KFLOW_LOG_LEVEL), got 'loud'")


def test_an_imported_module_leaves_logging_to_the_application(module):
    probe = (
        "import asyncio, logging, sys\n"
        f"sys.path.insert(0, {str(module.parent)!r})\n"
        "import monitoring_out\n"
        "seen = []\n"
        "class Keep(logging.Handler):\n"
        "    def emit(self, record): seen.append((record.name, record.getMessage()))\n"
        "logging.getLogger('kflow.monitoring').addHandler(Keep())\n"
        "logging.getLogger('kflow.monitoring').setLevel(logging.INFO)\n"
        "asyncio.run(monitoring_out.run({'some_operation': None, 'who': 'me'}))\n"
        "print(len(logging.getLogger().handlers), seen[-1])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 ('kflow.monitoring.hello', 'hello me')"
