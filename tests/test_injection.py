"""Nothing from a workflow can inject code into the generated module."""

from __future__ import annotations

import ast
import json

import pytest

from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder, ErrorHandler, compile_workflow

HOSTILE = [
    'a"); import os; ("',
    "b'); import os; ('",
    "c\nimport os\n",
    'd"""\nimport os\n"""',
    "e\\",
    "f # comment\rimport os",
    "g\u2028import os",
]


def hostile_workflow() -> AsyncWorkflowBuilder:
    builder = AsyncWorkflowBuilder('wf"""\nimport os\n"""', description='desc\nimport os # """')
    previous = None
    for i, node_id in enumerate(HOSTILE):
        builder.add_async_code(
            node_id,
            f"result = (x if x is not None else 0) + {i}" if previous else f"result = {i}",
            description=f'step {i}\nimport os"""',
            error_handler=ErrorHandler("fallback", fallback_value={'k"); import os; ("': node_id}),
        )
        if previous:
            builder.add_connection(previous, "result", node_id, "x")
        previous = node_id
    return builder


def test_hostile_ids_and_strings_stay_data():
    source = compile_workflow(hostile_workflow().build()).source
    tree = ast.parse(source)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [ast.unparse(n) for n in imports] == ["import kflow_runtime as rt"]
    top_level = [type(n).__name__ for n in tree.body]
    assert top_level.count("AsyncFunctionDef") == len(HOSTILE) + 1  # nodes, run_nodes()
    # Every hostile id appears only as a string constant, never as code.
    constants = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert set(HOSTILE) <= constants


async def test_hostile_workflow_runs():
    envelope = await AsyncLocalRuntime().execute_workflow_async(hostile_workflow().build(), {})
    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["results"][HOSTILE[-1]] == sum(range(len(HOSTILE)))


# -- defect 1: names from a ResourceRegistry -----------------------------------------------


def registry_workflow(tmp_path, name: str) -> str:
    path = tmp_path / "workflow.py"
    path.write_text(
        "from kailash.workflow import AsyncWorkflowBuilder\n"
        "from kflow import ResourceRegistry\n"
        "registry = ResourceRegistry()\n"
        f"registry.register_instance({name!r}, object())\n"
        'builder = AsyncWorkflowBuilder("w", resource_registry=registry)\n'
        'builder.add_async_code("a", "result = 1")\n'
    )
    return str(path)


@pytest.mark.parametrize("name", ["main-db", "x=print('PWNED')", "class", "a\x00b"])
def test_a_registry_name_that_is_not_a_python_name_is_a_located_error(kflowc, tmp_path, name):
    out = tmp_path / "out.py"
    code, _, stderr = kflowc("build", registry_workflow(tmp_path, name), "-o", str(out))
    assert code == 2 and not out.exists(), stderr
    assert "Traceback" not in stderr
    assert f"workflow.py:5:11: error KF014: resource {name!r} of the ResourceRegistry" in stderr


def test_a_registry_name_that_is_a_python_name_is_injected(kflowc, tmp_path):
    code, _, stderr = kflowc("build", registry_workflow(tmp_path, "main_db"),
                             "-o", str(tmp_path / "out.py"))
    assert code == 0, stderr


# -- defect 2: pattern parameters from an IR file ------------------------------------------

PAYLOAD = "__import__('os').system('echo PWNED') or 3"


def ir_with(tmp_path, kind_call: str, field: str, value) -> str:
    """An IR file built from a one-pattern workflow, with one parameter replaced."""
    from kflow.loader import load_workflow

    path = tmp_path / "workflow.py"
    path.write_text(
        "from kailash.workflow import AsyncWorkflowBuilder, AsyncPatterns\n"
        'builder = AsyncWorkflowBuilder("w")\n' + kind_call + "\n"
    )
    data = json.loads(load_workflow(str(path)).to_json())
    data["nodes"][-1]["params"][field] = value
    ir = tmp_path / "ir.json"
    ir.write_text(json.dumps(data, indent=2))
    return str(ir)


@pytest.mark.parametrize(
    "call, field",
    [
        ('AsyncPatterns.circuit_breaker(builder, "cb", "result = 1")', "failure_threshold"),
        ('builder.add_parallel_map("m", "async def process_item(i):\\n    return i")',
         "max_workers"),
        ('builder.add_parallel_map("m", "async def process_item(i):\\n    return i")',
         "input_field"),
        ('AsyncPatterns.batch_processor(builder, "b", "batch_results.extend(items)")',
         "batch_size"),
        ('AsyncPatterns.rate_limited(builder, "r", "result = 1")', "requests_per_second"),
    ],
)
def test_python_source_in_an_ir_parameter_is_refused_not_emitted(kflowc, tmp_path, call, field):
    ir = ir_with(tmp_path, call, field, PAYLOAD)
    out = tmp_path / "out.py"
    code, stdout, stderr = kflowc("build", ir, "-o", str(out))
    assert code == 2 and not out.exists(), stderr
    assert "Traceback" not in stderr and "PWNED" not in stdout
    first = stderr.splitlines()[0]
    assert first.startswith(f"{ir}:") and "error KF024" in first
    assert f".params: {field} must be" in first


# -- one scope: no user name shadows a generated one -------------------------------------

# Names that generated code uses (module names, template locals, the runtime alias).
GENERATED_NAMES = ["parallel_map", "operations", "chunk", "asyncio", "cache_key",
                   "batch_process", "limiter_rl", "breaker_cb", "rt", "kflow_rt", "outcome",
                   "process_batch", "code_rl", "primary_output", "primary_error", "node_src",
                   "key", "hit", "value", "lookup", "data", "functools", "ctx", "NODES"]


def every_pattern(name: str) -> AsyncWorkflowBuilder:
    """One node of each kind, every one reading an input called `name`."""
    from kflow import AsyncPatterns

    b = AsyncWorkflowBuilder("w")
    b.add_async_code("src", "result = {'items': [1, 2, 3], 'v': 5}")
    b.add_parallel_map("pm", f"async def process_item(i):\n    return i + {name}", max_workers=2)
    b.add_connection("src", "result.items", "pm", "items")
    AsyncPatterns.parallel_fetch(b, "pf", {"a": f"result = {name} + 1", "b": f"result = {name}"})
    AsyncPatterns.batch_processor(b, "bp", f"batch_results.extend(i + {name} for i in items)",
                                  batch_size=2)
    b.add_connection("src", "result.items", "bp", "items")
    AsyncPatterns.rate_limited(b, "rl", f"result = {name}", requests_per_second=100)
    AsyncPatterns.circuit_breaker(b, "cb", f"result = {{'x': {name}}}", timeout=5)
    b.add_async_code("opt", f"extra = globals().get('extra', [])\nresult = ({name}, extra)")
    AsyncPatterns.timeout_with_fallback(b, "prim", "fb", f"raise ValueError({name})",
                                        f"result = {name}", timeout_seconds=1)
    b.with_cache("cache")
    AsyncPatterns.cache_aside(b, "check", "fetch", "store", f"result = {{'got': {name}}}",
                              cache_key_template=f"k_{{{name}}}", ttl_seconds=None)
    for node in ("pm", "pf", "bp", "rl", "cb", "opt", "prim", "fb", "check"):
        b.add_connection("src", "result.v", node, name)
    return b


class DictCache:
    """Enough of a Redis client for cache_get / cache_set."""

    def __init__(self):
        self.data = {}

    async def get(self, key):
        return self.data.get(key)

    async def set(self, key, value, ex=None):
        self.data[key] = value


@pytest.mark.parametrize("name", GENERATED_NAMES)
async def test_an_input_named_like_generated_code_changes_nothing(name):
    envelope = await AsyncLocalRuntime().execute_workflow_async(
        every_pattern(name).build(), {}, resources={"cache": DictCache()})
    assert envelope["status"] == "success", envelope["errors"]
    results = envelope["results"]
    assert results["store"] == {"got": 5}
    assert results["pm"]["results"] == [6, 7, 8]
    assert results["pf"]["successful"] == {"a": 6, "b": 5}
    assert results["bp"]["results"] == [6, 7, 8]
    assert results["rl"] == 5 and results["cb"] == {"x": 5, "success": True}
    assert results["opt"] == (5, []) and results["fb"] == 5


def test_the_runtime_alias_is_rt_unless_the_workflow_uses_rt():
    plain = compile_workflow(every_pattern("v").build()).source
    assert "import kflow_runtime as rt\n" in plain
    taken = compile_workflow(every_pattern("rt").build()).source
    assert "import kflow_runtime as kflow_rt\n" in taken
    assert "rt.MISSING" not in taken.replace("kflow_rt.MISSING", "")


def test_a_custom_handler_and_a_custom_resource_use_one_runtime():
    b = AsyncWorkflowBuilder("w")
    b.require_resource("jobs", make_custom)
    b.add_async_code("a", "raise ValueError(jobs.name)",
                     error_handler=ErrorHandler("custom", code="result = Custom"))
    module = compile_workflow(b.build()).source
    tree = ast.parse(module)
    names = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert names == ["import kflow_runtime as rt"]
    assert "rt.Custom(on_error_a" in module


class Custom:
    name = "custom"


def make_custom():
    return Custom()


async def test_a_workflow_class_named_custom_does_not_replace_the_handler():
    b = AsyncWorkflowBuilder("w")
    b.require_resource("jobs", make_custom)
    b.add_async_code("a", "raise ValueError(jobs.name)",
                     error_handler=ErrorHandler("custom", code="result = str(error)"))
    envelope = await AsyncLocalRuntime().execute_workflow_async(b.build(), {})
    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["results"]["a"] == "custom"


def test_templates_cannot_write_an_unchecked_string():
    from kflow.templating import TemplateValueError, environment

    template = environment().from_string("x = {{ value }}")
    with pytest.raises(TemplateValueError):
        template.render(value="1); import os; (")
    assert template.render(value=3) == "x = 3"


@pytest.mark.parametrize("description", ["\n", "  ", "line one\nline two  ", "x\u2028y",
                                         "\tindented", "ends with a backslash\\"])
def test_any_description_gives_a_black_stable_comment(description):
    # Found by tests/test_properties.py: a description of only a line break left "# ".
    from kflow.format import format_source

    b = AsyncWorkflowBuilder("w", description=description)
    b.add_async_code("a", "result = 1", description=description)
    source = compile_workflow(b.build()).source
    assert format_source(source) == source


def test_wide_characters_are_measured_as_black_measures_them():
    # Found by tests/test_properties.py: an id of CJK characters fits 88 characters but
    # not 88 columns, and black split the ctx.call line kflowc had kept whole.
    from kflow.format import format_source

    b = AsyncWorkflowBuilder("w")
    b.add_async_code("\u2e80" * 30, "result = 1")
    b.add_async_code("b", "result = x")
    b.add_connection("\u2e80" * 30, None, "b", "x")
    source = compile_workflow(b.build()).source
    assert format_source(source) == source
