"""What a node kind is: the one unit of the compiler that knows what the kind means.

A kind (one module under `kflow.kinds`) holds, in one place:

- its `Params`: a frozen dataclass checked field by field when built (`kflow.values`),
  whether from the builder or an IR file;
- the authoring function users call (`AsyncPatterns.rate_limited(...)`), in the module;
- what analysis needs to know: how its code string is read (`code_role`: names the
  pattern binds for the code, the name it returns), what its generated wrapper reads and
  which resources it uses, its output's keys, and the checks only it can make;
- how it is emitted: `emit` turns the analysed node into pieces of the module, rendered
  from its template in `templates/patterns/`.

Adding a pattern is a new module here and its template; the registry finds the module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from kflow.errors import Diagnostic
from kflow.values import BadValue, Params

if TYPE_CHECKING:
    from kflow.analyze import NodeAnalysis
    from kflow.code_analysis import CodeAnalysis, StaticKeys
    from kflow.codegen import ModuleBuilder
    from kflow.ir import Node, Workflow
    from kflow.pieces import Emitted


@dataclass(frozen=True)
class NoParams(Params):
    """The parameters of a kind that has none."""


@dataclass(frozen=True)
class CodeRole:
    """How a kind's code string is analysed."""

    provided: tuple[str, ...] = ()  # names the pattern binds for the code
    returns: str = "result"  # the name the code function returns
    always_return: bool = False  # return it even if the code never assigns it
    what: str = "code"  # how messages name it


class Kind:
    """One node kind. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]] = NoParams
    label: ClassVar[str] = ""  # for `kflowc graph`; the name with spaces by default
    has_code: ClassVar[bool] = True  # whether a node of this kind carries a code string
    runs_off_loop: ClassVar[bool] = False  # its code runs in a thread: blocking calls are fine

    # -- structure (checked when the IR node is built) -------------------------------

    def check_node(self, node: Node) -> None:
        """Raise BadValue if the node cannot be of this kind (code present or not, ...)."""
        if self.has_code and node.code is None:
            raise BadValue(f"a {self.name} node needs code")
        if not self.has_code and node.code is not None:
            raise BadValue(f"a {self.name} node has no code")
        if node.codes:
            raise BadValue(f"a {self.name} node has no named codes")

    def check_graph(self, node: Node, workflow: Workflow) -> list[Diagnostic]:
        """Problems with the nodes and resources this one refers to."""
        return []

    # -- analysis ---------------------------------------------------------------------

    def code_role(self, node: Node) -> CodeRole:
        return CodeRole()

    def reads(self, node: Node) -> tuple[str, ...]:
        """Inputs the generated wrapper itself takes, besides what the code reads."""
        return ()

    def resources(self, node: Node) -> tuple[str, ...]:
        """Resources the generated wrapper uses, besides those the code names."""
        return ()

    def group(self, node: Node) -> tuple[str, ...]:
        """The nodes an input connected to this one reaches (cache-aside shares inputs)."""
        return (node.id,)

    def output_keys(self, node: Node, code: CodeAnalysis | None) -> StaticKeys | None:
        """The keys its output is known to have before it runs, if any."""
        return None

    def check_code(self, node: Node, code: CodeAnalysis | None) -> list[Diagnostic]:
        """Problems seen once the code is analysed; by default, code that never sets the
        name it returns (KF102), or that can end without setting it on some path (KF110)."""
        if code is None:
            return []
        role = self.code_role(node)
        if code.assigns_result:
            return [unset_warning(node.id, role.returns, code)] if code.unset_ends else []
        if role.always_return:
            return []
        return [Diagnostic(
            "KF102", f"node {node.id!r} never sets `{role.returns}`; its output will be None",
            node.location, f"assign the node's output to `{role.returns}`", severity="warning",
        )]

    def may_await(self, a: NodeAnalysis) -> bool:
        """Whether the node can suspend while it runs, so that a timeout can interrupt it.
        A node that cannot gets no timeout machinery (decided here, at compile time); a
        pattern awaits its own machinery, so by default every node can."""
        return True

    # -- generation -------------------------------------------------------------------

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<kind {self.name}>"


def unset_warning(node_id: str, returns: str, code: CodeAnalysis) -> Diagnostic:
    """KF110: a path through the code ends without assigning `returns` (the guide's
    `except: pass`); at run time the node would fail there."""
    from kflow.ir import SourceLocation

    lines = code.unset_ends
    where = SourceLocation(code.file, lines[0], 0) if code.file else None
    others = f" (and at line {', '.join(map(str, lines[1:]))})" if lines[1:] else ""
    return Diagnostic(
        "KF110", f"node {node_id!r} can end here without setting `{returns}`{others}; "
        "the node then fails", where,
        f"assign `{returns}` on every path (in an `except`, the value to use instead), "
        "or raise", severity="warning",
    )


def fixed_keys(*keys: str | None) -> dict[str, Any]:
    return dict.fromkeys(k for k in keys if k is not None)
