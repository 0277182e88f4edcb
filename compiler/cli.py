"""`kflowc`: a thin command line over `kflow.api`.

Exit codes: 0 success; 1 a run that failed; 2 a workflow kflowc cannot compile
or bad input. Compile errors print as diagnostics, never as tracebacks.
Every path kflowc will write is checked before anything runs, and written
atomically, with the mode a plain `open()` would give it (the umask; an
existing file keeps its own).
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Sequence

import click

from kflow.api import CompiledModule, compile_workflow
from kflow.errors import CompileError, Diagnostic
from kflow.ir import Workflow
from kflow.loader import load_ir, load_workflow

EXIT_COMPILE = 2


def write_atomically(path: str, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new, never half.

    mkstemp makes the file 0600; it gets the mode `open()` would have given a new file
    (0666 less the umask), or the mode of the file it replaces."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".kflowc-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _mode_for(path: str) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _check_writable(option: str, path: str | None) -> None:
    """Exit 2 before anything runs if `path` cannot be written (its folder is missing)."""
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        click.echo(f"error: {option} {path}: the folder {directory} does not exist; "
                   "create it first", err=True)
        sys.exit(EXIT_COMPILE)
    if not os.access(directory, os.W_OK):
        click.echo(f"error: {option} {path}: the folder {directory} is not writable", err=True)
        sys.exit(EXIT_COMPILE)
    if os.path.isdir(path):
        click.echo(f"error: {option} {path} is a folder; name a file", err=True)
        sys.exit(EXIT_COMPILE)


def _load(path: str, name: str | None) -> Workflow:
    if path.endswith(".json"):
        return load_ir(path)  # every problem in it is a located CompileError
    return load_workflow(path, name)


def _report(diagnostics: Sequence[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        click.echo(diagnostic.format(), err=True)


def _summary(compiled: CompiledModule) -> None:
    if compiled.workflow_inputs:
        click.echo("workflow inputs: " + ", ".join(compiled.workflow_inputs), err=True)
    if compiled.env_vars:
        click.echo("reads secrets from the environment: " + ", ".join(compiled.env_vars), err=True)
    if compiled.config_vars:
        click.echo("reads configuration from the environment when it runs: " + ", ".join(
            f"{var} -> {where} (default {default!r})" for var, where, default in
            compiled.config_vars), err=True)


def _version_message() -> str:
    from kflow._version import RUNTIME_INTERFACE, __version__
    from kflow_runtime import INTERFACE
    from kflow_runtime import __version__ as runtime_version

    return (f"kflowc {__version__}: builds modules for kflow-runtime interface "
            f"{RUNTIME_INTERFACE}; installed kflow-runtime {runtime_version} provides "
            f"interface {INTERFACE}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(message=_version_message(), package_name="kflow")
def cli() -> None:
    """kflowc compiles AsyncWorkflowBuilder workflows into plain-asyncio modules.

    \b
    Shell completion: add to ~/.bashrc (zsh: zsh_source in ~/.zshrc)
      eval "$(_KFLOWC_COMPLETE=bash_source kflowc)"
    """


@cli.command(short_help="Compile a workflow (.py or IR .json) into one module.")
@click.argument("workflow_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="where to write the module (default: stdout)")
@click.option("--name", help="module attribute holding the workflow, builder or build function")
@click.option("--emit-ir", type=click.Path(dir_okay=False), help="also write the IR as JSON")
def build(workflow_file: str, output: str | None, name: str | None, emit_ir: str | None) -> None:
    """Compile WORKFLOW_FILE (a .py file, or IR .json) into one module."""
    _check_writable("-o", output)
    _check_writable("--emit-ir", emit_ir)
    try:
        workflow = _load(workflow_file, name)
        compiled = compile_workflow(workflow, source_file=workflow_file if not
                                    workflow_file.endswith(".json") else None)
    except CompileError as exc:
        _report(exc.diagnostics)
        sys.exit(EXIT_COMPILE)
    _report(compiled.warnings)
    if emit_ir:
        write_atomically(emit_ir, workflow.to_json() + "\n")
    if output:
        write_atomically(output, compiled.source)
        count = len(workflow.nodes)
        click.echo(f"wrote {output} ({count} node{'' if count == 1 else 's'})", err=True)
    else:
        click.echo(compiled.source, nl=False)
    _summary(compiled)


@cli.command(short_help="Compile a workflow in memory, run it once, print the envelope.")
@click.argument("workflow_file", type=click.Path(dir_okay=False))
@click.option("--inputs", "inputs_json", default="{}", help="workflow inputs as a JSON object")
@click.option("--inputs-file", type=click.Path(dir_okay=False), help="read inputs from a JSON file")
@click.option("--name", help="module attribute holding the workflow")
@click.option("--quiet", is_flag=True, help="no progress on stderr, only the envelope")
@click.option("--trace", type=click.Path(dir_okay=False), help="write a Chrome trace JSON")
@click.option("--otel", is_flag=True,
              help="send OpenTelemetry spans and metrics over OTLP/HTTP (OTEL_* variables)")
def run(workflow_file: str, inputs_json: str, inputs_file: str | None, name: str | None,
        quiet: bool, trace: str | None, otel: bool) -> None:
    """Compile WORKFLOW_FILE in memory, run it once and print the envelope.

    Progress goes to stderr: a live view on a terminal, a line per event otherwise.
    """
    from kflow.runtime import AsyncLocalRuntime
    from kflow_runtime.cli import (
        EXIT_BAD_INPUT,
        EXIT_FAILED,
        is_input_failure,
        make_observer,
        parse_inputs,
        run_interruptible,
        start_otel,
    )
    from kflow_runtime.envelope import to_json

    _check_writable("--trace", trace)
    try:
        text = open(inputs_file, encoding="utf-8").read() if inputs_file else inputs_json
        inputs = parse_inputs(text, inputs_file or "--inputs")
    except (OSError, ValueError) as exc:
        click.echo(f"error: bad inputs: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    try:
        workflow = _load(workflow_file, name)
        runtime = AsyncLocalRuntime()
        runtime.module(workflow)
    except CompileError as exc:
        _report(exc.diagnostics)
        sys.exit(EXIT_COMPILE)
    try:
        flush = start_otel(otel, workflow.name)
    except ImportError as exc:  # kflow_runtime.otel.OtelUnavailable
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    observer = make_observer(not quiet, trace)
    # Ctrl-C and SIGTERM cancel the run as in a shipped module: one line, the envelope.
    try:
        envelope, interrupt = run_interruptible(
            lambda: runtime.execute_workflow_async(workflow, inputs, observer=observer)
        )
    finally:
        if flush is not None:
            flush()
    if interrupt.signum is not None:
        envelope = interrupt.envelope
    if envelope is not None:
        click.echo(to_json(envelope))
    if interrupt.signum is not None:
        sys.exit(interrupt.report())
    if envelope["status"] != "success":
        sys.exit(EXIT_BAD_INPUT if is_input_failure(envelope) else EXIT_FAILED)


@cli.command(short_help="Report every problem found, without running anything.")
@click.argument("workflow_file", type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="names that become workflow inputs are errors")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--name", help="module attribute holding the workflow")
def check(workflow_file: str, strict: bool, fmt: str, name: str | None) -> None:
    """Report every problem found without running WORKFLOW_FILE.

    Exit code 0: clean; 1: warnings (with --strict); 2: errors.
    """
    from kflow.check import CheckReport
    from kflow.check import check as run_check

    try:
        report = run_check(_load(workflow_file, name), strict=strict)
    except CompileError as exc:
        report = CheckReport(list(exc.diagnostics))
    click.echo(report.json() if fmt == "json" else report.text())
    code = report.exit_code
    sys.exit(code if strict or code == 2 else 0)


@cli.command(short_help="Draw the workflow's DAG (Mermaid, Graphviz dot, SVG).")
@click.argument("workflow_file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "svg"]), default="mermaid")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write here, not stdout")
@click.option("--name", help="module attribute holding the workflow")
def graph(workflow_file: str, fmt: str, output: str | None, name: str | None) -> None:
    """Draw WORKFLOW_FILE's DAG: node ids and kinds, edges with path -> input."""
    from kflow.render_graph import GraphError, render

    _check_writable("-o", output)
    try:
        text = render(_load(workflow_file, name), fmt)
    except CompileError as exc:
        _report(exc.diagnostics)
        sys.exit(EXIT_COMPILE)
    except GraphError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_COMPILE)
    if output:
        write_atomically(output, text)
    else:
        click.echo(text, nl=False)


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=argv, prog_name="kflowc")


if __name__ == "__main__":
    main()
