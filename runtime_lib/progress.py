"""What `--progress` shows: a live view on a terminal, a line per event elsewhere, and
a summary table at the end. rich draws it; it is imported only when asked for."""

from __future__ import annotations

import importlib.util
import time
from typing import IO, Any

from kflow_runtime.observe import Observer

STATES = ("waiting", "running", "done", "recovered", "failed", "skipped")
_STYLE = {"waiting": "dim", "running": "cyan", "done": "green", "recovered": "yellow",
          "failed": "bold red", "skipped": "magenta"}


class _Tracker(Observer):
    """Node states, durations and map progress, shared by both views."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.workflow = ""
        self.origin = time.perf_counter()
        self.state: dict[str, str] = {}
        self.started: dict[str, float] = {}
        self.duration: dict[str, float] = {}
        self.maps: dict[str, tuple[int, int | None]] = {}  # done, total

    def run_started(self, workflow: str, nodes: tuple[str, ...], at: float) -> None:
        self.workflow, self.origin = workflow, at
        self.state = dict.fromkeys(nodes, "waiting")

    def node_started(self, node_id: str, at: float) -> None:
        self.state[node_id] = "running"
        self.started[node_id] = at

    def node_finished(self, node_id: str, status: str, at: float, error: str | None) -> None:
        self.state[node_id] = status
        self.duration[node_id] = at - self.started.get(node_id, at)

    def node_skipped(self, node_id: str, at: float) -> None:
        self.state[node_id] = "skipped"

    def map_progress(self, node_id: str, done: int, total: int | None) -> None:
        self.maps[node_id] = (done, total)

    def rate(self, node_id: str) -> float:
        """Items a second since the node started."""
        done, _ = self.maps[node_id]
        elapsed = time.perf_counter() - self.started.get(node_id, self.origin)
        return done / elapsed if elapsed > 0 else 0.0

    def summary(self, envelope: dict[str, Any] | None = None) -> Any:
        from rich.table import Table

        items = map_items(envelope)
        table = Table(title=f"workflow {self.workflow}")
        table.add_column("node")
        table.add_column("status")
        table.add_column("duration", justify="right")
        if items:
            table.add_column("items")
        for node, state in self.state.items():
            took = f"{self.duration[node]:.3f}s" if node in self.duration else ""
            row = [node, f"[{_STYLE[state]}]{state}[/]", took]
            if items:
                detail = items.get(node, "")
                row.append(f"[yellow]{detail}[/]" if "failed" in detail else detail)
            table.add_row(*row)
        return table

    def console(self) -> Any:
        from rich.console import Console

        return Console(file=self.stream, highlight=False)


class LiveView(_Tracker):
    """A live table of node states, with a progress bar per parallel map."""

    def run_started(self, workflow: str, nodes: tuple[str, ...], at: float) -> None:
        from rich.live import Live

        super().run_started(workflow, nodes, at)
        self.live = Live(console=self.console(), get_renderable=self.render,
                         refresh_per_second=8, transient=True)
        self.live.start()

    def render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        for node, state in self.state.items():
            row: list[Any] = [node, f"[{_STYLE[state]}]{state}[/]"]
            if node in self.maps:
                done, total = self.maps[node]
                row.append(ProgressBar(total=total or max(done, 1), completed=done, width=30))
                row.append(f"{done}/{total if total is not None else '?'} items "
                           f"{self.rate(node):,.0f}/s")
            table.add_row(*row)
        return Group(f"[bold]{self.workflow}[/]", table)

    def run_finished(self, envelope: dict[str, Any], at: float) -> None:
        self.live.stop()
        self.console().print(self.summary(envelope))


class LineLog(_Tracker):
    """One plain line per event, for logs and pipes (no cursor tricks)."""

    def _line(self, at: float, text: str) -> None:
        print(f"[{at - self.origin:9.3f}s] {text}", file=self.stream, flush=True)

    def run_started(self, workflow: str, nodes: tuple[str, ...], at: float) -> None:
        super().run_started(workflow, nodes, at)
        self._line(at, f"workflow {workflow}: {len(nodes)} nodes")

    def node_started(self, node_id: str, at: float) -> None:
        super().node_started(node_id, at)
        self._line(at, f"{node_id}: running")

    def node_finished(self, node_id: str, status: str, at: float, error: str | None) -> None:
        super().node_finished(node_id, status, at, error)
        detail = f" ({error})" if error else ""
        self._line(at, f"{node_id}: {status} in {self.duration[node_id]:.3f}s{detail}")

    def node_skipped(self, node_id: str, at: float) -> None:
        super().node_skipped(node_id, at)
        self._line(at, f"{node_id}: skipped")

    def map_progress(self, node_id: str, done: int, total: int | None) -> None:
        before = self.maps.get(node_id, (0, None))[0]
        super().map_progress(node_id, done, total)
        # A line per tenth of the items (or per 1,000 when the total is unknown).
        step = max(total // 10, 1) if total else 1000
        if done // step != before // step or done == total:
            self._line(time.perf_counter(), f"{node_id}: {done}/{total if total else '?'} "
                       f"items, {self.rate(node_id):,.0f}/s")

    def run_finished(self, envelope: dict[str, Any], at: float) -> None:
        self._line(at, f"workflow {self.workflow}: {envelope['status']}")
        if _has_rich():
            self.console().print(self.summary(envelope))
            return
        items = map_items(envelope)
        for node, state in self.state.items():
            took = f" {self.duration[node]:.3f}s" if node in self.duration else ""
            detail = f", {items[node]}" if node in items else ""
            print(f"  {node}: {state}{took}{detail}", file=self.stream, flush=True)


def map_items(envelope: dict[str, Any] | None) -> dict[str, str]:
    """For each node whose output is a parallel map's (`results`, `errors`, `statistics`),
    what happened to its items: "7 items, 1 failed (1 timed out)". A map that went on
    after failures is "done", so the summary says what "done" does not."""
    found: dict[str, str] = {}
    for node, output in ((envelope or {}).get("results") or {}).items():
        if not isinstance(output, dict):
            continue
        stats, errors = output.get("statistics"), output.get("errors")
        if not (isinstance(stats, dict) and isinstance(errors, list)
                and isinstance(stats.get("total"), int)):
            continue
        text = f"{stats['total']} items"
        if errors:
            timed_out = sum(1 for e in errors if isinstance(e, dict)
                            and e.get("error_type") == "TimeoutError")
            text += f", {len(errors)} failed"
            if timed_out:
                text += f" ({timed_out} timed out)"
        found[node] = text
    return found


def _has_rich() -> bool:
    # rich comes with kflow-runtime[progress]; a runtime installed without it still shows
    # progress, as plain lines.
    return importlib.util.find_spec("rich") is not None


def progress_observer(stream: IO[str]) -> Observer:
    """A live view on a terminal (when rich is installed), plain lines otherwise."""
    return LiveView(stream) if stream.isatty() and _has_rich() else LineLog(stream)
