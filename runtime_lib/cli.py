"""The command line of a generated module: `python out.py --inputs '{...}'`.

Prints the run's envelope as JSON, whatever the nodes returned (see envelope.py).
`--progress` shows the run on stderr, `--trace FILE` writes a Chrome trace of it, and
`--inputs-jsonl FILE` runs once per line, printing each envelope as soon as it and the
ones before it are done. `--otel` sends the run's spans and metrics over OTLP/HTTP, set up
from the standard OTEL_* variables (docs/observability.md); KFLOW_OTEL=1 sends them to
providers set up by someone else (`opentelemetry-instrument python out.py`). `--checkpoint URL`
(or $KFLOW_CHECKPOINT) stores each node's outcome as it ends and `--run-id ID` (or
$KFLOW_RUN_ID) names the run, so running the same id again resumes it (docs/durable.md);
`python out.py runs list|show ID|gc --older-than 7d` looks after the store.

Exit codes: 0 success, 1 a failed run, 2 bad input or usage (unreadable, too large or too
deeply nested JSON, required inputs missing, a bad option, a checkpoint store refusing or
failing the run), 130 interrupted by SIGINT
(Ctrl-C) and 143 by SIGTERM (128 + the signal's number, as a shell reports a process
killed by it), 141 when the reader of stdout went away (`python out.py | head`).
Interrupted, the run's nodes are cancelled, its resources closed (a transaction open in
node code is rolled back by the driver), and the envelope printed with status
"cancelled" and the nodes that were running in `cancelled`; a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE's number

# The largest inputs document (or one --inputs-jsonl line) read, in MiB, unless
# --max-input-mb says otherwise: a bigger one is refused before it is parsed.
DEFAULT_MAX_INPUT_MB = 64


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


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
                        help="run once per line (a JSON object each); print one envelope a "
                        "line, in input order, as the runs end")
    parser.add_argument("--max-concurrency", type=_positive_int, default=10, metavar="N",
                        help="with --inputs-jsonl: runs at once (default 10)")
    parser.add_argument("--max-input-mb", type=_positive_int, default=DEFAULT_MAX_INPUT_MB,
                        metavar="MB", help="refuse inputs (or a JSONL line) larger than this "
                        f"(default {DEFAULT_MAX_INPUT_MB})")
    parser.add_argument("--dask-scheduler", metavar="ADDRESS",
                        help="send every parallel map (and, with --inputs-jsonl, the runs) to "
                        "this Dask cluster, e.g. tcp://10.0.0.5:8786; the same as setting "
                        "KFLOW_DASK_SCHEDULER")
    parser.add_argument("--progress", action="store_true",
                        help="show node states and map progress on stderr")
    parser.add_argument("--trace", metavar="FILE",
                        help="write a Chrome trace-event JSON of the run (opens in Perfetto)")
    parser.add_argument("--checkpoint", metavar="URL",
                        default=os.environ.get("KFLOW_CHECKPOINT") or None,
                        help="store each node's outcome as it ends, in a SQLite file (a path or "
                        "sqlite:///path) or postgresql://...; run again with the same --run-id "
                        "to resume (default $KFLOW_CHECKPOINT)")
    parser.add_argument("--run-id", metavar="ID", default=os.environ.get("KFLOW_RUN_ID") or None,
                        help="the run's id in the checkpoint store: a finished id answers with "
                        "its stored envelope, an unfinished one resumes (default $KFLOW_RUN_ID; "
                        "none: a new id, printed in the envelope)")
    parser.epilog = ("housekeeping of a checkpoint store: %(prog)s runs list|show ID|"
                     "gc --older-than 7d [--checkpoint URL]")
    parser.add_argument("--otel", action="store_true",
                        help="send OpenTelemetry spans and metrics over OTLP/HTTP, set up from "
                        "OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME and the other OTEL_* "
                        "variables (needs opentelemetry-sdk and "
                        "opentelemetry-exporter-otlp-proto-http)")
    parser.add_argument("--log-level", type=_log_level, metavar="LEVEL",
                        default=os.environ.get("KFLOW_LOG_LEVEL") or "WARNING",
                        help="log records of this level and above to stderr: DEBUG, INFO, "
                        "WARNING (default), ERROR or CRITICAL; the same as setting "
                        "KFLOW_LOG_LEVEL")
    args = parser.parse_args(argv)
    if args.inputs_jsonl and (args.progress or args.trace):
        # Both watch one run; with many at once their lines and spans would interleave.
        parser.error("--progress and --trace watch one run: use them with --inputs or "
                     "--inputs-file, not with --inputs-jsonl")
    return args


def start_otel(flag: bool, workflow: str | None) -> Callable[[], None] | None:
    """Set up tracing as asked (`flag`: --otel; KFLOW_OTEL); the flush to call before exit,
    if any. OtelUnavailable (an ImportError) naming what to install when packages are missing."""
    from kflow_runtime.observe import OTEL_ENV, otel_wanted

    if not (flag or otel_wanted()):
        return None
    from kflow_runtime import otel

    otel.require_api()
    if not flag:
        return None  # spans go to the global providers the process set up
    shutdown = otel.configure_sdk(workflow)
    os.environ[OTEL_ENV] = "1"  # every run of this process (--inputs-jsonl too) is traced
    return shutdown


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str) -> str:
    import argparse

    level = text.strip().upper()
    if level not in _LEVELS:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(_LEVELS)} (from --log-level or KFLOW_LOG_LEVEL), "
            f"got {text!r}")
    return level


def configure_logging(level: str) -> None:
    """Log to stderr, as a script run of the module: node code's loggers
    (`kflow.<workflow>.<node>`) and kflow's own. Only `main` calls this: a module that
    is imported leaves logging to the application importing it. stdout keeps the
    envelope alone."""
    import logging

    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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


# --------------------------------------------------------------------------- inputs


def parse_inputs(text: str, origin: str) -> dict[str, Any]:
    """One inputs document: a JSON object, or ValueError naming `origin` and the problem."""
    try:
        inputs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{origin}: not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError(
            f"{origin}: JSON nested too deeply to read (more than about "
            f"{sys.getrecursionlimit()} levels of arrays and objects)"
        ) from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise ValueError(f"{origin}: unreadable JSON: {exc}") from None
    if not isinstance(inputs, dict):
        raise ValueError(f"{origin}: inputs must be a JSON object, not {type(inputs).__name__}")
    return inputs


def _too_large(origin: str, limit_mb: int) -> ValueError:
    return ValueError(f"{origin}: larger than {limit_mb} MiB; raise the limit with "
                      f"--max-input-mb if that is intended")


def read_inputs(args: argparse.Namespace) -> dict[str, Any]:
    limit = getattr(args, "max_input_mb", DEFAULT_MAX_INPUT_MB)
    if args.inputs_file:
        origin = args.inputs_file
        with open(args.inputs_file, encoding="utf-8") as handle:
            text = handle.read(limit * 2**20 + 1)
    else:
        text = args.inputs or "{}"
        origin = "--inputs"
    if len(text) > limit * 2**20:
        raise _too_large(origin, limit)
    return parse_inputs(text, origin)


def is_input_failure(envelope: dict[str, Any]) -> bool:
    return any(str(msg).startswith("InputError:") for msg in envelope["errors"].values())


def read_inputs_lines(path: str, limit_mb: int = DEFAULT_MAX_INPUT_MB, *,
                      workflow: str | None = None) -> Iterator[Any]:
    """Each non-blank line's inputs, read lazily; a bad line gives its error envelope
    (a `many.Ready`), numbered, in its place. OSError if the file cannot be opened."""
    from kflow_runtime.many import Ready, failed_envelope

    limit = limit_mb * 2**20
    handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed by the generator

    def lines() -> Iterator[Any]:
        with handle:
            number = 0
            while True:
                line = handle.readline(limit + 1)
                if not line:
                    return
                number += 1
                origin = f"{path}:{number}"
                if len(line) > limit and not line.endswith("\n"):
                    while (rest := handle.readline(2**20)) and not rest.endswith("\n"):
                        pass  # skip the rest of the over-long line
                    problem: str | None = str(_too_large(origin, limit_mb))
                elif not line.strip():
                    continue
                else:
                    try:
                        yield parse_inputs(line, origin)
                        continue
                    except ValueError as exc:
                        problem = str(exc)
                envelope = failed_envelope("inputs", f"InputError: {problem}", workflow=workflow)
                envelope["line"] = number
                yield Ready(envelope)

    return lines()


# --------------------------------------------------------------------------- output


class _Output:
    """stdout for envelopes: flushed per envelope; a reader that went away ends quietly."""

    def __init__(self) -> None:
        self.broken = False

    def write(self, text: str) -> None:
        try:
            self._write(text + "\n")
        except BrokenPipeError:
            self.broken = True
            # Python would report the failed flush at exit; point stdout at nothing instead.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            raise

    @staticmethod
    def _write(text: str) -> None:
        stream = sys.stdout
        stream.flush()
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # not a file (a test's capture)
            stream.write(text)
            stream.flush()
            return
        # os.write, not the buffered stream: a BufferedWriter that hits a closed pipe part
        # way through a large write reports a short count instead of raising.
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[os.write(fd, data):]


# --------------------------------------------------------------------------- signals


class Interrupt:
    """SIGINT and SIGTERM cancel the run (so every node and resource is cleaned up);
    a second signal exits at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.envelope: dict[str, Any] | None = None

    async def guard(self, work: Callable[[], Awaitable[Any]]) -> Any:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self._received, signum, task)
                installed.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread, or a platform without loop signal handlers
        try:
            return await work()
        except asyncio.CancelledError as exc:
            if self.signum is None:
                raise
            self.envelope = getattr(exc, "envelope", None)
            return None
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    def _received(self, signum: int, task: asyncio.Task[Any]) -> None:
        if self.signum is None:
            self.signum = signum
            task.cancel()
            return
        print(f"{_signal_name(signum)} again: exiting without waiting for clean-up",
              file=sys.stderr, flush=True)
        os._exit(128 + signum)

    def report(self) -> int:
        assert self.signum is not None
        name = _signal_name(self.signum)
        envelope = self.envelope
        if envelope is None:
            print(f"interrupted by {name}", file=sys.stderr)
        else:
            cancelled = ", ".join(repr(n) for n in envelope.get("cancelled", ())) or "none"
            print(f"interrupted by {name}: cancelled nodes {cancelled}; resources closed",
                  file=sys.stderr)
        return 128 + self.signum


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def run_interruptible(work: Callable[[], Awaitable[Any]]) -> tuple[Any, Interrupt]:
    """`asyncio.run(work())` with SIGINT and SIGTERM cancelling it: `(its result, the
    Interrupt)`; after a signal the result is None, `interrupt.signum` says which, and
    `interrupt.envelope` is the cancelled run's envelope (if a run was under way) and
    `interrupt.report()` prints the line and returns the exit code."""
    interrupt = Interrupt()
    try:
        result = asyncio.run(interrupt.guard(work))
    except KeyboardInterrupt:
        # Ctrl-C before the loop's handlers were in place (or where it has none).
        interrupt.signum = interrupt.signum or signal.SIGINT
        result = None
    return result, interrupt


# --------------------------------------------------------------------------- main


def _exit_code(statuses: list[str], input_failure: bool) -> int:
    if all(status == "success" for status in statuses):
        return EXIT_OK
    return EXIT_BAD_INPUT if input_failure else EXIT_FAILED


def _main_many(run: Callable[..., Awaitable[dict[str, Any]]],
               run_many: Callable[..., Awaitable[list[dict[str, Any]]]] | None,
               args: argparse.Namespace, workflow: str | None) -> int:
    from kflow_runtime.envelope import to_json
    from kflow_runtime.many import Ready, stream_each

    try:
        items = read_inputs_lines(args.inputs_jsonl, args.max_input_mb, workflow=workflow)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = _Output()
    statuses: list[str] = []
    input_failure = False

    def emit(envelope: dict[str, Any]) -> None:
        nonlocal input_failure
        statuses.append(envelope["status"])
        input_failure = input_failure or is_input_failure(envelope)
        out.write(to_json(envelope, indent=None))

    async def streamed() -> None:
        await stream_each(run, items, emit, max_concurrency=args.max_concurrency)

    async def chunked() -> None:
        # On a Dask cluster the runs go through run_many (a parallel map on the cluster),
        # a chunk at a time: lines appear as each chunk ends.
        assert run_many is not None
        chunk: list[Any] = []
        exhausted = False
        while not exhausted:
            chunk.clear()
            for item in items:
                chunk.append(item)
                if len(chunk) == args.max_concurrency * 4:
                    break
            else:
                exhausted = True
            runs = [item for item in chunk if not isinstance(item, Ready)]
            envelopes = iter(await run_many(runs, max_concurrency=args.max_concurrency))
            for item in chunk:
                emit(item.envelope if isinstance(item, Ready) else next(envelopes))

    on_cluster = run_many is not None and os.environ.get("KFLOW_DASK_SCHEDULER")
    try:
        _, interrupt = run_interruptible(chunked if on_cluster else streamed)
    except BrokenPipeError:
        return EXIT_BROKEN_PIPE
    if interrupt.signum is not None:
        cancelled = statuses.count("cancelled")
        print(f"interrupted by {_signal_name(interrupt.signum)}: {len(statuses) - cancelled} "
              f"runs finished, {cancelled} cancelled (every one printed)", file=sys.stderr)
        return 128 + interrupt.signum
    return _exit_code(statuses, input_failure)


class _NoError(Exception):
    """Raised by nothing: what main() catches when no checkpoint store is in use."""


def _about(run: Callable[..., Any]) -> tuple[str, str | None]:
    """(the generated module's name, its workflow's name) for a module's `run`: a
    `Program.run` (kflow_runtime.program), or a plain function of an older module."""
    program = getattr(run, "__self__", None)
    if program is not None and hasattr(program, "workflow"):
        return program.module, program.workflow
    return getattr(run, "__module__", "__main__"), getattr(run, "__globals__", {}).get("WORKFLOW")


def main(
    run: Callable[..., Awaitable[dict[str, Any]]],
    argv: Sequence[str] | None = None,
    *,
    run_many: Callable[..., Awaitable[list[dict[str, Any]]]] | None = None,
    description: str = "Run this kflow workflow and print its envelope as JSON.",
) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["runs"]:  # the checkpoint store's housekeeping
        from kflow_runtime.checkpoint.cli import runs_main

        return runs_main(words[1:], prog=f"{os.path.basename(sys.argv[0])} runs")
    module, workflow = _about(run)
    args = _parse(words, description, module)
    configure_logging(args.log_level)
    if args.dask_scheduler:
        os.environ["KFLOW_DASK_SCHEDULER"] = args.dask_scheduler
    try:
        flush = start_otel(args.otel, workflow)
    except ImportError as exc:  # otel.OtelUnavailable
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return _main(run, run_many, args, workflow)
    finally:
        if flush is not None:
            flush()


def _main(run: Callable[..., Awaitable[dict[str, Any]]],
          run_many: Callable[..., Awaitable[list[dict[str, Any]]]] | None,
          args: argparse.Namespace, workflow: str | None) -> int:
    if args.inputs_jsonl:
        if args.checkpoint or args.run_id:
            print("error: --checkpoint and --run-id name one run; they do not go with "
                  "--inputs-jsonl (unset KFLOW_CHECKPOINT / KFLOW_RUN_ID, or run each inputs "
                  "with its own --run-id)", file=sys.stderr)
            return EXIT_BAD_INPUT
        return _main_many(run, run_many, args, workflow)
    if args.run_id and not args.checkpoint:
        print("error: --run-id names a run in a checkpoint store: pass --checkpoint URL "
              "(or set KFLOW_CHECKPOINT) too", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        inputs = read_inputs(args)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from kflow_runtime.envelope import to_json

    observer = make_observer(args.progress, args.trace)
    options: dict[str, Any] = {"observer": observer} if observer else {}
    if args.checkpoint:
        options.update(checkpoint=args.checkpoint, run_id=args.run_id)
        from kflow_runtime.checkpoint import CheckpointError
    else:
        CheckpointError = _NoError  # noqa: N806 - nothing to catch without a store
    try:
        envelope, interrupt = run_interruptible(lambda: run(inputs, **options))
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if interrupt.signum is not None:
        envelope = interrupt.envelope
    try:
        if envelope is not None:
            _Output().write(to_json(envelope))
    except BrokenPipeError:
        return EXIT_BROKEN_PIPE
    if interrupt.signum is not None:
        return interrupt.report()
    if envelope["status"] == "success":
        return EXIT_OK
    return EXIT_BAD_INPUT if is_input_failure(envelope) else EXIT_FAILED
