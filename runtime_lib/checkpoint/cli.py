"""``runs list|show ID|gc --older-than 7d --checkpoint URL``: a store's housekeeping on the
command line. A generated module mounts it as ``python out.py runs ...`` (`runs_main`)."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ._errors import CheckpointError
from ._model import RunRecord
from ._url import mask
from .runs import gc_runs, list_runs, parse_duration, show_run

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="List, show and delete "
                                     "checkpointed runs.")
    _store_option(parser, default=os.environ.get("KFLOW_CHECKPOINT"))
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="runs, newest first")
    listing.add_argument("--workflow", help="only runs of this workflow")
    listing.add_argument("--limit", type=int, help="at most this many runs")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = commands.add_parser("show", help="one run and its node outcomes")
    show.add_argument("run_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="as one JSON object")
    gc = commands.add_parser("gc", help="delete runs not written for a while")
    gc.add_argument("--older-than", required=True, metavar="AGE",
                    help="last started, resumed or finished more than AGE ago: "
                    "30s, 15m, 12h, 7d, 2w")
    for command in (listing, show, gc):
        # Also after the command; SUPPRESS, so the command does not reset a value given before.
        _store_option(command, default=argparse.SUPPRESS)
    return parser


def _store_option(parser: argparse.ArgumentParser, *, default: str | None) -> None:
    parser.add_argument("--checkpoint", metavar="URL", default=default,
                        help="the store: a file path, sqlite:///path or postgresql://... "
                        "(default: $KFLOW_CHECKPOINT)")


def runs_main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    args = _parser(prog).parse_args(argv)
    if not args.checkpoint:
        print("error: no store given: pass --checkpoint URL or set KFLOW_CHECKPOINT",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if args.command == "list":
            return _list(args)
        if args.command == "show":
            return _show(args)
        return _gc(args)
    except (CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _list(args: argparse.Namespace) -> int:
    runs = asyncio.run(list_runs(args.checkpoint, workflow=args.workflow, limit=args.limit))
    if args.json:
        for record in runs:
            print(json.dumps(_record_json(record)))
        return EXIT_OK
    header = ("RUN ID", "WORKFLOW", "STATUS", "STARTED (UTC)", "DURATION", "NODES", "STARTS")
    rows = [(r.run_id, r.workflow, r.status, _when(r.started_at), _duration(r.duration),
             str(r.stored_nodes), str(r.starts)) for r in runs]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    found = asyncio.run(show_run(args.checkpoint, args.run_id))
    if found is None:
        print(f"error: no run {args.run_id!r} in {mask(args.checkpoint)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    record, nodes = found
    if args.json:
        print(json.dumps({
            **_record_json(record),
            "envelope": json.loads(record.envelope) if record.envelope else None,
            "nodes": [{**asdict(node), "output": node.value()} for node in nodes.values()],
        }, indent=2))
        return EXIT_OK
    finished = _when(record.finished_at) if record.finished_at else "not finished"
    print(f"run {record.run_id}  workflow {record.workflow!r}  {record.status}")
    print(f"  started {_when(record.started_at)} UTC, finished {finished}, "
          f"duration {_duration(record.duration)}, starts {record.starts}")
    print(f"  last owner {record.owner} (kflow-runtime {record.runtime_version}), "
          f"inputs hash {record.inputs_hash[:16]}")
    for node in nodes.values():
        attempts = f"{node.attempts} attempt{'s' if node.attempts != 1 else ''}"
        line = f"  {node.node_id}: {node.status}, {attempts}, {_duration(node.duration)}"
        if not node.exact:
            line += ", output not restorable (re-runs on resume)"
        if node.error:
            line += f", {'error' if node.status == 'failed' else 'recovered from'}: {node.error}"
        print(line)
    return EXIT_OK


def _gc(args: argparse.Namespace) -> int:
    report = asyncio.run(gc_runs(args.checkpoint, parse_duration(args.older_than)))
    print(f"deleted {report.runs} run{'s' if report.runs != 1 else ''} idle for more than "
          f"{args.older_than} ({report.nodes} node outcomes, {report.chunks} item chunks)")
    if report.busy:
        print(f"kept {len(report.busy)} that a process holds: {', '.join(report.busy)}")
    return EXIT_OK


def _record_json(record: RunRecord) -> dict[str, Any]:
    data = asdict(record)
    data.pop("envelope")
    data["duration"] = record.duration
    return data


def _when(seconds: float) -> str:
    return f"{datetime.datetime.fromtimestamp(seconds, datetime.UTC):%Y-%m-%d %H:%M:%S}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


if __name__ == "__main__":
    raise SystemExit(runs_main())
