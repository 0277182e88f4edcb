"""Load a workflow file: execute it and take the workflow it builds.

Files written for the guide's own imports (`from kailash.workflow import
AsyncWorkflowBuilder`, `from kailash.runtime import AsyncLocalRuntime`) load
unchanged: while the file runs, those module names resolve to kflow's.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
from collections.abc import Callable
from typing import Any

from kflow import locate
from kflow.aliases import kailash_aliases
from kflow.builder import AsyncWorkflowBuilder
from kflow.errors import CompileError, error
from kflow.ir import SourceLocation, Workflow
from kflow.values import BadValue
from kflow_runtime.patterns.retry import RetryPolicyError

CANDIDATES = ("workflow", "builder", "build_workflow")


def load_workflow(path: str, name: str | None = None) -> Workflow:
    """Execute `path` and return the workflow it defines (see CANDIDATES, or `name`)."""
    return load_file(path, name)[0]


def load_ir(path: str) -> Workflow:
    """Read an IR file (`kflowc build --emit-ir`), trusting nothing in it."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise error("KF020", f"no IR file at {path!r}", None,
                    "pass the path of an IR file written by `kflowc build --emit-ir`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error("KF020", f"cannot read IR file {path!r}: {exc}", None,
                    "pass the path of an IR file written by `kflowc build --emit-ir`") from None
    return Workflow.from_json(text, file=path)


def load_file(path: str, name: str | None = None) -> tuple[Workflow, dict[str, Any]]:
    """The workflow `path` defines, and the namespace the file left behind."""
    if not os.path.isfile(path):
        raise error("KF020", f"no workflow file at {path!r}", None,
                    "pass the path of a Python file that builds a workflow")
    locate.clear_cache()
    directory = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, directory)
    from kflow.envprov import tracking, unused_reads

    try:
        with kailash_aliases(), tracking() as reads:
            namespace = _run_file(path)
            workflow = _pick(namespace, path, name)
        notes = unused_reads(reads, workflow)
        if notes:
            from kflow.builder import _EXTRAS, RuntimeExtras, attach_extras

            extras = _EXTRAS.get(id(workflow))
            if extras is None:
                attach_extras(workflow, extras := RuntimeExtras())
            extras.notes.extend(notes)
        return workflow, namespace
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)


def _run_file(path: str) -> dict[str, Any]:
    try:
        return runpy.run_path(path, run_name="__kflow_workflow__")
    except CompileError:
        raise
    except SystemExit as exc:
        raise _exited(exc, path, f"{path}") from None
    except (BadValue, RetryPolicyError) as exc:
        raise _bad_policy(exc, path) from None
    except SyntaxError as exc:
        cause, hint = _syntax_cause(path, exc)
        raise error(
            "KF021", f"{path} is not valid Python: {exc.msg}{cause}",
            SourceLocation(path, exc.lineno or 1, max((exc.offset or 1) - 1, 0)),
            hint or "fix the syntax; a workflow file runs as a normal Python module",
        ) from None
    except Exception as exc:  # noqa: BLE001 - the user's file failed; say where, not how kflow failed
        raise error(
            "KF022", f"{path} raised {type(exc).__name__}: {exc}", _user_frame(exc, path),
            "the workflow file must run without errors; run `python -m kflow "
            f"{os.path.basename(path)}` to see the full traceback (the guide's kailash "
            "imports work there)",
        ) from None


_OUTSIDE = ("'await' outside function", "'async with' outside async function",
            "'async for' outside async function", "asynchronous comprehension outside")
_TRIPLE = ('"' * 3, "'" * 3)


def _syntax_cause(path: str, exc: SyntaxError) -> tuple[str, str | None]:
    """Why a workflow file is not Python, for the two mistakes the guide's own snippets
    lead to: top-level `await`, and a code string holding triple quotes (an SQL string in
    triple quotes inside the triple-quoted code string ends the code string early)."""
    if any(exc.msg.startswith(text) for text in _OUTSIDE):
        return ("", "kflowc runs workflow.py as a plain module to build the workflow, and a "
                "module cannot `await` at top level: the guide's `await runtime."
                "execute_workflow_async(...)` belongs in an `async def` (a test, or `async def "
                "main()` run by `asyncio.run(main())` under `if __name__ == \"__main__\":`); "
                "or build the module and run it with `python out.py --inputs ...`")
    nested = _nested_triple_quotes(path)
    if nested is None:
        return "", None
    opened, first, second, quote = nested
    other = _TRIPLE[1] if quote == _TRIPLE[0] else _TRIPLE[0]
    return (f" (the code string opened at line {opened} holds {quote} at lines {first} and "
            f"{second}, which ends it early)",
            f"write the inner string with {other} (or the code string with {other})")


def _nested_triple_quotes(path: str) -> tuple[int, int, int, str] | None:
    """(line of the outer string's opening, lines of the inner pair, the quote) when
    swapping the quotes on one pair of lines holding triple quotes makes the file parse:
    then a triple-quoted string inside a triple-quoted one is the cause."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError):
        return None
    for quote in _TRIPLE:
        other = _TRIPLE[1] if quote == _TRIPLE[0] else _TRIPLE[0]
        holding = [i for i, line in enumerate(lines) if quote in line][:60]
        for a, b in zip(holding, holding[1:], strict=False):
            changed = list(lines)
            changed[a] = changed[a].replace(quote, other)
            changed[b] = changed[b].replace(quote, other)
            try:
                compile("\n".join(changed), path, "exec", dont_inherit=True)
            except SyntaxError:
                continue
            except ValueError:
                return None
            before = [i for i in holding if i < a]
            return (before[-1] + 1 if before else a + 1), a + 1, b + 1, quote
    return None


def _exited(exc: SystemExit, path: str, what: str) -> CompileError:
    """A workflow file that calls sys.exit() defines nothing kflowc can build."""
    return error(
        "KF022", f"{what} called sys.exit({'' if exc.code is None else repr(exc.code)}) "
        "while kflowc was loading it", _user_frame(exc, path),
        "a workflow file must define the workflow and return; put script code under "
        "`if __name__ == \"__main__\":`",
    )


def _bad_policy(exc: BadValue | RetryPolicyError, path: str) -> CompileError:
    """A policy (AsyncRetryPolicy, ErrorHandler) built with a bad argument, at its line."""
    return error("KF011", exc.message, _user_frame(exc, path), exc.hint)


def _user_frame(exc: BaseException, path: str) -> SourceLocation | None:
    target = os.path.abspath(path)
    tb, found = exc.__traceback__, None
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) == target:
            found = SourceLocation(path, tb.tb_lineno, 0)
        tb = tb.tb_next
    return found


def _pick(namespace: dict[str, Any], path: str, name: str | None) -> Workflow:
    if name is not None:
        if name not in namespace:
            raise error("KF023", f"{path} defines no {name!r}", None,
                        f"names it defines: {', '.join(sorted(_public(namespace)))}")
        return _as_workflow(namespace[name], name, path)
    for candidate in CANDIDATES:
        if candidate in namespace:
            return _as_workflow(namespace[candidate], candidate, path)
    found = [k for k, v in namespace.items() if isinstance(v, Workflow | AsyncWorkflowBuilder)]
    if len(found) == 1:
        return _as_workflow(namespace[found[0]], found[0], path)
    raise error(
        "KF023", f"{path} defines no workflow", None,
        "define `workflow = builder.build()`, a `builder`, a `build_workflow()` function, "
        "or pass --name OBJ",
    )


def _as_workflow(obj: Any, name: str, path: str) -> Workflow:
    if isinstance(obj, Workflow):
        return obj
    if isinstance(obj, AsyncWorkflowBuilder):
        return obj.build()
    if callable(obj):
        built = _call(obj, name, path)
        return _as_workflow(built, name, path)
    raise error("KF023", f"{name!r} in {path} is a {type(obj).__name__}, not a workflow", None,
                "point --name at a Workflow, an AsyncWorkflowBuilder or a function returning one")


def _call(fn: Callable[[], Any], name: str, path: str) -> Any:
    try:
        return fn()
    except CompileError:
        raise
    except SystemExit as exc:
        raise _exited(exc, path, f"{name}() in {path}") from None
    except (BadValue, RetryPolicyError) as exc:
        raise _bad_policy(exc, path) from None
    except Exception as exc:  # noqa: BLE001
        raise error("KF022", f"{name}() in {path} raised {type(exc).__name__}: {exc}",
                    _user_frame(exc, path), "it must build the workflow without errors") from None


def _public(namespace: dict[str, Any]) -> list[str]:
    return [k for k in namespace if not k.startswith("_")]
