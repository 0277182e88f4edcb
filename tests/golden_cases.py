"""Load golden cases: golden/<case>/workflow.py, expected.py, expected_envelope.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kflow.loader import load_file
from kflow_runtime.envelope import to_json

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


@dataclass
class Case:
    name: str
    directory: Path

    @property
    def workflow_file(self) -> Path:
        return self.directory / "workflow.py"

    @property
    def expected_file(self) -> Path:
        return self.directory / "expected.py"

    @property
    def envelope_file(self) -> Path:
        return self.directory / "expected_envelope.json"

    def load(self):
        workflow, namespace = load_file(str(self.workflow_file))
        return workflow, namespace


def cases() -> list[Case]:
    return [Case(d.name, d) for d in sorted(GOLDEN.iterdir()) if (d / "workflow.py").is_file()]


def runnable_cases() -> list[Case]:
    """Cases that run without services; the others run in tests/integration."""
    return [c for c in cases() if not c.load()[1].get("NEEDS_SERVICES")]


def example_inputs(namespace: dict[str, Any]) -> dict[str, Any]:
    """A case's inputs: `example_inputs()` (fresh state per run) or `EXAMPLE_INPUTS`."""
    if callable(namespace.get("example_inputs")):
        return namespace["example_inputs"]()
    return dict(namespace.get("EXAMPLE_INPUTS", {}))


# Measured, so different on every run: patterns report them in their statistics.
TIMINGS = frozenset({"duration", "total_duration", "items_per_second"})


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def normalise(envelope: dict[str, Any]) -> dict[str, Any]:
    """The parts of an envelope that do not change from run to run."""
    data = json.loads(to_json(envelope))
    data["execution_times"] = sorted(data["execution_times"])
    data.pop("total_duration")
    data.pop("run_id")
    data["results"] = _without_timings(data["results"])
    return data
