"""`code`: a node of async code (`builder.add_async_code`); its output is `result`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kflow.ir import Node
from kflow.kinds._authoring import checked_call, code_block, node_options
from kflow.kinds._base import Kind
from kflow.locate import caller_site

if TYPE_CHECKING:
    from kflow.analyze import NodeAnalysis
    from kflow.builder import AsyncWorkflowBuilder
    from kflow.code_analysis import CodeAnalysis, StaticKeys
    from kflow.codegen import ModuleBuilder
    from kflow.pieces import Emitted


class CodeKind(Kind):
    name = "code"
    label = "code"

    def output_keys(self, node: Node, code: CodeAnalysis | None) -> StaticKeys | None:
        return code.static_keys if code is not None else None

    def may_await(self, a: NodeAnalysis) -> bool:
        # Its function is the code itself: opening a resource awaits, and so does the code
        # when it has an `await`, `async for` or `async with` of its own.
        return a.code is None or a.code.awaits or bool(a.resources)

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        return m.code_node(a)


@checked_call("KF011")
def add_async_code(
    builder: AsyncWorkflowBuilder,
    node_id: str,
    code: str,
    *,
    timeout: float | None = 30,
    retry_policy: Any = None,
    error_handler: Any = None,
    required_resources: Sequence[str] | None = None,
    description: str | None = None,
) -> str:
    """Add a node running `code`; its output is the value of `result`.

    `timeout` is seconds per attempt (None or `float('inf')`: no limit).
    """
    site = caller_site()
    block = code_block(code, site, site.string_at(1, "code"))
    options = node_options(site, timeout=timeout, retry_policy=retry_policy,
                           error_handler=error_handler, required_resources=required_resources,
                           description=description)
    return builder.add_node(builder.node(node_id, "code", site, code=block, options=options))


KINDS = (CodeKind(),)
