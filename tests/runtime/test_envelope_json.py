"""Envelopes always print as valid JSON, whatever the nodes returned; numpy and pandas
values as numbers and arrays; a closed stdout ends the module quietly (issue 11 part 5,
issue 14 part 6)."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kflow import AsyncWorkflowBuilder, compile_workflow
from kflow_runtime.envelope import MAX_DEPTH, to_json


def strict(text: str) -> Any:
    """json.loads that refuses NaN and Infinity, which are not JSON."""
    def refuse(constant: str) -> Any:
        raise AssertionError(f"not valid JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def printed(value: Any) -> Any:
    return strict(to_json({"v": value}))["v"]


class BadRepr:
    def __repr__(self) -> str:
        raise ValueError("no repr for you")


class Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def __repr__(self) -> str:
        return f"Point(x={self.x})"


@dataclasses.dataclass
class Node:
    name: str
    next: Any = None


def cyclic_list() -> list[Any]:
    items: list[Any] = [1]
    items.append(items)
    return items


def cyclic_dict() -> dict[str, Any]:
    data: dict[str, Any] = {"a": 1}
    data["self"] = data
    return data


def cyclic_dataclass() -> Node:
    node = Node("n")
    node.next = node
    return node


@pytest.mark.parametrize(("value", "expected"), [
    ({(1, 2): 3, (3, 4): 5}, {"(1, 2)": 3, "(3, 4)": 5}),
    ({1: "a", None: "b", 2.5: "d"}, {"1": "a", "null": "b", "2.5": "d"}),
    ({False: "f"}, {"false": "f"}),
    ({b"k": 1, frozenset({1}): 2}, {"b'k'": 1, "frozenset({1})": 2}),
    (cyclic_list(), [1, "<cycle: list shown above>"]),
    (cyclic_dict(), {"a": 1, "self": "<cycle: dict shown above>"}),
    (cyclic_dataclass(), {"name": "n", "next": "<cycle: Node shown above>"}),
    (BadRepr(), "<BadRepr: repr() raised ValueError: no repr for you>"),
    (Point(1), "<Point: Point(x=1)>"),
    (b"\x00\xff", "AP8="),
    ({3, 1, 2}, [1, 2, 3]),
    (frozenset({"b", "a"}), ["a", "b"]),
    (float("nan"), "NaN"),
    ([float("inf"), float("-inf")], ["Infinity", "-Infinity"]),
    ({"nan": float("nan")}, {"nan": "NaN"}),
    (10**5000, "<int of 16610 bits>"),
    (decimal.Decimal("1.10"), "1.10"),
    (datetime.date(2024, 1, 2), "2024-01-02"),
    (datetime.timedelta(seconds=90), 90.0),
    ((1, (2, 3)), [1, [2, 3]]),
    (Node("a", Node("b")), {"name": "a", "next": {"name": "b", "next": None}}),
], ids=lambda v: type(v).__name__)
def test_values_json_cannot_hold_print_json_safe_with_a_marker(value: Any, expected: Any):
    assert printed(value) == expected


def test_a_set_that_cannot_be_sorted_prints_as_a_list():
    assert sorted(printed({1, "a"}), key=str) == [1, "a"]


def test_a_shared_value_that_is_not_a_cycle_prints_in_full():
    shared = [1, 2]
    assert printed({"a": shared, "b": shared}) == {"a": [1, 2], "b": [1, 2]}


def test_nesting_deeper_than_the_limit_is_cut_with_a_marker():
    deep: list[Any] = []
    cursor = deep
    for _ in range(5000):
        cursor.append([])
        cursor = cursor[0]
    value = printed(deep)
    for _ in range(MAX_DEPTH - 1):
        value = value[0]
    assert value == f"<nested deeper than {MAX_DEPTH} levels>"


def test_numpy_values_print_as_json_numbers_and_arrays():
    np = pytest.importorskip("numpy")
    out = printed({
        "int": np.int64(3), "float": np.float32(1.5), "bool": np.bool_(True),
        "nan": np.float64("nan"), "array": np.array([[1, 2], [3, 4]]),
        "floats": np.array([0.5, np.inf]), "date": np.datetime64("2024-01-02"),
        "uint": np.uint64(2**64 - 1),
    })
    assert out == {
        "int": 3, "float": 1.5, "bool": True, "nan": "NaN", "array": [[1, 2], [3, 4]],
        "floats": [0.5, "Infinity"], "date": "2024-01-02", "uint": 2**64 - 1,
    }


def test_pandas_values_print_as_json_numbers_and_arrays():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"n": [1, 2], "x": [0.5, float("nan")]})
    out = printed({
        "frame": frame, "series": pd.Series([1, 2]), "labelled": pd.Series({"a": 1.5}),
        "timestamp": pd.Timestamp("2024-01-02 03:04:05"), "nat": pd.NaT,
        "index": pd.Index([3, 4]), "sum": frame["n"].sum(),
    })
    assert out == {
        "frame": [{"n": 1, "x": 0.5}, {"n": 2, "x": "NaN"}], "series": [1, 2],
        "labelled": {"a": 1.5}, "timestamp": "2024-01-02T03:04:05", "nat": None,
        "index": [3, 4], "sum": 3,
    }


# --------------------------------------------------------------------------- as a script


def module_file(tmp_path: Path, code: str) -> Path:
    builder = AsyncWorkflowBuilder("odd_outputs")
    builder.add_async_code("odd", code)
    path = tmp_path / "out.py"
    path.write_text(compile_workflow(builder.build()).source)
    return path


def test_a_module_prints_outputs_json_cannot_hold(tmp_path: Path):
    pytest.importorskip("numpy")
    module = module_file(tmp_path, """
import numpy as np
loop = []
loop.append(loop)
result = {"pairs": {(1, 2): np.int64(3)}, "loop": loop, "nan": float("nan"),
          "mean": np.array([1.0, 2.0]).mean(), "tags": {"b", "a"}, "raw": b"hi"}
""")
    done = subprocess.run([sys.executable, str(module)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert strict(done.stdout)["results"]["odd"] == {
        "pairs": {"(1, 2)": 3}, "loop": ["<cycle: list shown above>"], "nan": "NaN",
        "mean": 1.5, "tags": ["a", "b"], "raw": "aGk=",
    }


@pytest.mark.parametrize("jsonl", [False, True], ids=["one run", "inputs-jsonl"])
def test_a_closed_stdout_ends_the_module_quietly(tmp_path: Path, jsonl: bool):
    # `python out.py | head -c 10`: the reader goes away while the module still writes.
    module = module_file(tmp_path, "result = list(range(n))")
    if jsonl:
        lines = tmp_path / "runs.jsonl"
        lines.write_text('{"n": 20000}\n' * 200)
        args = ["--inputs-jsonl", str(lines)]
    else:
        args = ["--inputs", '{"n": 300000}']
    proc = subprocess.Popen([sys.executable, str(module), *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(60) == 141
    assert err == b""
