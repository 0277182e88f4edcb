"""`python_code`: a node of plain (sync) code, Kailash's `PythonCodeNode`; its output is
`result`. The code runs in a worker thread (`rt.off_loop`), so blocking calls in it do
not stall the other nodes of the run."""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kflow.errors import error
from kflow.ir import CodeBlock, Node, SourceLocation
from kflow.kinds._authoring import code_block, node_options
from kflow.kinds._base import Kind
from kflow.locate import caller_site
from kflow.pysource import Code
from kflow.values import did_you_mean

if TYPE_CHECKING:
    from kflow.analyze import NodeAnalysis
    from kflow.builder import AsyncWorkflowBuilder
    from kflow.code_analysis import CodeAnalysis, StaticKeys
    from kflow.codegen import ModuleBuilder
    from kflow.pieces import Emitted


class PythonCodeKind(Kind):
    name = "python_code"
    label = "python code"
    runs_off_loop = True

    def output_keys(self, node: Node, code: CodeAnalysis | None) -> StaticKeys | None:
        return code.static_keys if code is not None else None

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        from kflow.pieces import Emitted

        fn = m.code_function(a, a.code, "node", m.node_params(a), is_async=False,
                             decorator=Code(f"@{m.rt}.off_loop"))
        return Emitted([fn], fn.name)


# Kailash's node types that are code nodes, and whether their code is async.
CODE_NODE_TYPES = {"AsyncPythonCodeNode": True, "PythonCodeNode": False}
# Config keys of such a node besides "code": the options every node takes.
CONFIG_KEYS = ("code", "timeout", "retry_policy", "error_handler", "required_resources",
               "description")
# What the guide offers instead of other Kailash node types.
EQUIVALENTS = (
    "HTTP nodes: builder.with_http_client('api', base_url=...) and `await api.get(...)` in "
    "code; SQL nodes: builder.with_database('db', ...) and `await db.fetch(...)`; "
    "everything else: builder.add_async_code(node_id, code)"
)


def add_kailash_node(builder: AsyncWorkflowBuilder, node_type: Any, node_id: Any,
                     config: Any = None, **kwargs: Any) -> str:
    """`builder.add_node("AsyncPythonCodeNode", "id", {"code": ...})`, as Kailash writes it."""
    site = caller_site()
    if node_type not in CODE_NODE_TYPES:
        raise error(
            "KF011", f"add_node(): kflow has no node type {node_type!r}; it supports "
            f"{', '.join(map(repr, CODE_NODE_TYPES))}", site.location,
            "; ".join(filter(None, (did_you_mean(str(node_type), list(CODE_NODE_TYPES)),
                                    EQUIVALENTS))),
        )
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise error("KF011", f"add_node(): the config of {node_type} must be a dict, not "
                    f"{type(config).__name__}", site.location,
                    f"add_node({node_type!r}, {node_id!r}, {{'code': '...'}})")
    merged = {**config, **kwargs}
    for key in merged:
        if key not in CONFIG_KEYS:
            raise error("KF011", f"add_node(): {node_type} has no config key {key!r}",
                        site.location, "; ".join(filter(None, (
                            did_you_mean(str(key), list(CONFIG_KEYS)),
                            f"the keys are {', '.join(CONFIG_KEYS)}"))))
    if "code" not in merged:
        raise error("KF011", f"add_node(): {node_type} needs its code",
                    site.location, f"add_node({node_type!r}, {node_id!r}, {{'code': '...'}})")
    literal = site.dict_value_at(2, "config", "code") or site.string_at(99, "code")
    block = code_block(merged["code"], site, literal)
    options = node_options(site, **{k: v for k, v in merged.items() if k != "code"})
    is_async = CODE_NODE_TYPES[node_type]
    if not is_async:
        _check_sync(block, node_id, node_type)
    kind = "code" if is_async else "python_code"
    return builder.add_node(builder.node(node_id, kind, site, code=block, options=options))


_ASYNC = (ast.Await, ast.AsyncFor, ast.AsyncWith)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def _check_sync(block: CodeBlock, node_id: Any, node_type: str) -> None:
    """A PythonCodeNode's code runs as a plain function: `await` there is a located error
    (its syntax errors are reported by the analysis, as for any code)."""
    try:
        tree = ast.parse(textwrap.dedent(block.text))
    except SyntaxError:
        return
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, _ASYNC):
            origin = block.origin
            where = origin
            if origin is not None and block.exact:
                where = SourceLocation(origin.file, origin.line + node.lineno - 1, 0)
            raise error(
                "KF011", f"node {node_id!r}: {node_type} code is plain (sync) code and "
                "cannot use `await`", where,
                f"use add_node('AsyncPythonCodeNode', {node_id!r}, {{'code': ...}}) for async "
                "code",
            )
        if not isinstance(node, _SCOPES):
            stack.extend(ast.iter_child_nodes(node))


KINDS = (PythonCodeKind(),)
