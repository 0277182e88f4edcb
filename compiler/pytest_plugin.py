"""kflow's pytest plugin (entry point `pytest11`): the guide's tests run as written.

Two things, each only when it is needed:

- Where the real Kailash SDK is not installed, `from kailash.workflow import
  AsyncWorkflowBuilder` and the guide's other imports give kflow's API
  (`kflow.aliases`). Where it is installed, nothing changes.
- Where pytest-asyncio is not installed, a test marked `@pytest.mark.asyncio` (the
  guide's decorator) runs on a fresh event loop. With pytest-asyncio present, it
  does the work, with all its options.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest

from kflow import aliases

if not aliases.kailash_is_real():
    aliases.install()


def _has_pytest_asyncio(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("asyncio")


def pytest_configure(config: pytest.Config) -> None:
    if not _has_pytest_asyncio(config):
        config.addinivalue_line(
            "markers", "asyncio: run this coroutine test on a fresh event loop (kflow's plugin)"
        )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if _has_pytest_asyncio(pyfuncitem.config):
        return None
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test) or pyfuncitem.get_closest_marker("asyncio") is None:
        return None
    wanted = inspect.signature(test).parameters
    arguments = {name: value for name, value in pyfuncitem.funcargs.items() if name in wanted}
    asyncio.run(test(**arguments))
    return True
