"""The command line of a generated module: `python out.py --inputs '{...}'`.

Prints the run's envelope as JSON. Exit code 0 on success, 1 on a failed run,
2 on bad input (unreadable JSON, or required inputs missing). `--progress` shows
the run on stderr, `--trace FILE` writes a Chrome trace of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def version_line(module: str) -> str:
    """What a generated module was built for, and what runs it."""
    from kflow_runtime import BUILT, INTERFACE, __version__

    needed, built_with = BUILT.get(module, (None, None))
    built = (f"built by kflow {built_with} for kflow-runtime interface {needed}"
             if needed is not None else "built by an unknown kflow")
    return f"{built}; running on kflow-runtime {__version__} (interface {INTERFACE})"


def _parse(argv: Sequence[str] | None, description: str, module: str) -> argparse.Namespace:
    # Imported here: importing a generated module should not pay for its CLI.
    import argparse

    class Version(argparse.Action):  # argparse's own "version" action re-wraps the line
        def __call__(self, parser: Any, *_: Any) -> None:
            print(f"{parser.prog}: {version_line(module)}")
            parser.exit()

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--version", action=Version, nargs=0,
                        help="show what kflow built this module for, and the runtime running it")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--inputs", help="workflow inputs as a JSON object")
    source.add_argument("--inputs-file", help="read workflow inputs from a JSON file")
    source.add_argument("--inputs-jsonl", metavar="FILE",
                        help="run once per line (a JSON object each); print one envelope a line")
    parser.add_argument("--max-concurrency", type=int, default=10,
                        help="with --inputs-jsonl: runs at once (default 10)")
    parser.add_argument("--dask-scheduler", metavar="ADDRESS",
                        help="send every parallel map (and, with --inputs-jsonl, the runs) to "
                        "this Dask cluster, e.g. tcp://10.0.0.5:8786; the same as setting "
                        "KFLOW_DASK_SCHEDULER")
    parser.add_argument("--progress", action="store_true",
                        help="show node states and map progress on stderr")
    parser.add_argument("--trace", metavar="FILE",
                        help="write a Chrome trace-event JSON of the run (opens in Perfetto)")
    return parser.parse_args(argv)


def make_observer(progress: bool, trace: str | None) -> Any:
    """The observer asked for on the command line, or None."""
    from kflow_runtime.observe import Observers, TraceRecorder
    from kflow_runtime.progress import progress_observer

    observers = []
    if progress:
        observers.append(progress_observer(sys.stderr))
    if trace:
        observers.append(TraceRecorder(trace))
    if not observers:
        return None
    return observers[0] if len(observers) == 1 else Observers(observers)


def read_inputs(args: argparse.Namespace) -> dict[str, Any]:
    if args.inputs_file:
        with open(args.inputs_file, encoding="utf-8") as handle:
            text = handle.read()
        origin = args.inputs_file
    else:
        text = args.inputs or "{}"
        origin = "--inputs"
    try:
        inputs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{origin}: not valid JSON: {exc}") from None
    if not isinstance(inputs, dict):
        raise ValueError(f"{origin}: inputs must be a JSON object, not {type(inputs).__name__}")
    return inputs


def is_input_failure(envelope: dict[str, Any]) -> bool:
    return any(str(msg).startswith("InputError:") for msg in envelope["errors"].values())


def read_inputs_lines(path: str) -> list[dict[str, Any]]:
    inputs_list = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                inputs = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON: {exc}") from None
            if not isinstance(inputs, dict):
                raise ValueError(f"{path}:{number}: inputs must be a JSON object")
            inputs_list.append(inputs)
    return inputs_list


def _main_many(run_each: Callable[..., Awaitable[list[dict[str, Any]]]],
               args: argparse.Namespace) -> int:
    from kflow_runtime.envelope import to_json

    try:
        inputs_list = read_inputs_lines(args.inputs_jsonl)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    envelopes = asyncio.run(run_each(inputs_list, max_concurrency=args.max_concurrency))
    for envelope in envelopes:
        print(to_json(envelope, indent=None))
    if all(e["status"] == "success" for e in envelopes):
        return EXIT_OK
    return EXIT_BAD_INPUT if any(is_input_failure(e) for e in envelopes) else EXIT_FAILED


def main(
    run: Callable[..., Awaitable[dict[str, Any]]],
    argv: Sequence[str] | None = None,
    *,
    run_many: Callable[..., Awaitable[list[dict[str, Any]]]] | None = None,
    description: str = "Run this kflow workflow and print its envelope as JSON.",
) -> int:
    args = _parse(argv, description, getattr(run, "__module__", "__main__"))
    if args.dask_scheduler:
        os.environ["KFLOW_DASK_SCHEDULER"] = args.dask_scheduler
    if args.inputs_jsonl:
        if run_many is None:
            print("error: --inputs-jsonl needs main(run, run_many=...)", file=sys.stderr)
            return EXIT_BAD_INPUT
        return _main_many(run_many, args)
    try:
        inputs = read_inputs(args)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from kflow_runtime.envelope import to_json

    observer = make_observer(args.progress, args.trace)
    envelope = asyncio.run(run(inputs, observer=observer) if observer else run(inputs))
    print(to_json(envelope))
    if envelope["status"] == "success":
        return EXIT_OK
    return EXIT_BAD_INPUT if is_input_failure(envelope) else EXIT_FAILED
