"""`kflowc`: a thin command line over `kflow.api`.

Exit codes: 0 success; 1 a run that failed; 2 a workflow kflowc cannot compile
or bad input. Compile errors print as diagnostics, never as tracebacks.
"""

from __future__ import annotations

import asyncio
import json
import os
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
    """Write `text` to `path` so that readers see the old file or the new, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".kflowc-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


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


@click.group()
@click.version_option(package_name="kflow")
def cli() -> None:
    """kflowc compiles AsyncWorkflowBuilder workflows into plain-asyncio modules."""


@cli.command()
@click.argument("workflow_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="where to write the module (default: stdout)")
@click.option("--name", help="module attribute holding the workflow, builder or build function")
@click.option("--emit-ir", type=click.Path(dir_okay=False), help="also write the IR as JSON")
def build(workflow_file: str, output: str | None, name: str | None, emit_ir: str | None) -> None:
    """Compile WORKFLOW_FILE (a .py file, or IR .json) into one module."""
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
        click.echo(f"wrote {output} ({len(workflow.nodes)} nodes)", err=True)
    else:
        click.echo(compiled.source, nl=False)
    _summary(compiled)


@cli.command()
@click.argument("workflow_file", type=click.Path(dir_okay=False))
@click.option("--inputs", "inputs_json", default="{}", help="workflow inputs as a JSON object")
@click.option("--inputs-file", type=click.Path(dir_okay=False), help="read inputs from a JSON file")
@click.option("--name", help="module attribute holding the workflow")
@click.option("--quiet", is_flag=True, help="no progress on stderr, only the envelope")
@click.option("--trace", type=click.Path(dir_okay=False), help="write a Chrome trace JSON")
def run(workflow_file: str, inputs_json: str, inputs_file: str | None, name: str | None,
        quiet: bool, trace: str | None) -> None:
    """Compile WORKFLOW_FILE in memory, run it once and print the envelope.

    Progress goes to stderr: a live view on a terminal, a line per event otherwise.
    """
    from kflow.runtime import AsyncLocalRuntime
    from kflow_runtime.cli import EXIT_BAD_INPUT, EXIT_FAILED, is_input_failure, make_observer
    from kflow_runtime.envelope import to_json

    try:
        text = open(inputs_file, encoding="utf-8").read() if inputs_file else inputs_json
        inputs = json.loads(text)
        if not isinstance(inputs, dict):
            raise ValueError("inputs must be a JSON object")
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
    observer = make_observer(not quiet, trace)
    envelope = asyncio.run(runtime.execute_workflow_async(workflow, inputs, observer=observer))
    click.echo(to_json(envelope))
    if envelope["status"] != "success":
        sys.exit(EXIT_BAD_INPUT if is_input_failure(envelope) else EXIT_FAILED)


@cli.command()
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


@cli.command()
@click.argument("workflow_file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "svg"]), default="mermaid")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write here, not stdout")
@click.option("--name", help="module attribute holding the workflow")
def graph(workflow_file: str, fmt: str, output: str | None, name: str | None) -> None:
    """Draw WORKFLOW_FILE's DAG: node ids and kinds, edges with path -> input."""
    from kflow.render_graph import GraphError, render

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
