"""LibCST transformers that turn a node's code string into a function body.

One transformer per concern, each tested before/after in tests/test_transforms.py.
None of them adds or removes lines in the user's code, so a statement keeps the
line it had in workflow.py; only `return_result` appends one statement at the end.
"""

from __future__ import annotations

import libcst as cst

from kflow.binding import OptionalInput

# Defaults that are safe to put in a function signature: evaluated once and immutable.
_IMMUTABLE_DEFAULTS = (
    cst.Integer,
    cst.Float,
    cst.Imaginary,
    cst.SimpleString,
    cst.ConcatenatedString,
)


def _is_immutable(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, _IMMUTABLE_DEFAULTS):
        return True
    if isinstance(expr, cst.Name):
        return expr.value in ("None", "True", "False")
    if isinstance(expr, cst.UnaryOperation):
        return _is_immutable(expr.expression)
    if isinstance(expr, cst.Tuple):
        return all(_is_immutable(el.value) for el in expr.elements)
    return False


def _is_namespace_get(call: cst.Call) -> bool:
    """`globals().get(...)` or `locals().get(...)`. (Plain checks: importing
    libcst.matchers costs half a second on every kflowc run.)"""
    func = call.func
    if not (isinstance(func, cst.Attribute) and func.attr.value == "get"):
        return False
    inner = func.value
    return (
        isinstance(inner, cst.Call)
        and not inner.args
        and isinstance(inner.func, cst.Name)
        and inner.func.value in ("globals", "locals")
    )


class OptionalInputs(cst.CSTTransformer):
    """`globals().get("x", d)` / `locals().get("x", d)` -> the optional input `x`.

    The guide reads optional connected values this way. Compiled code has no
    namespace to look in, so the call becomes the name itself, with `d` as the
    parameter's default; a mutable default (`[]`, `{}`) is not shared between
    runs: the parameter defaults to MISSING and the read falls back to `d`.
    """

    def __init__(self, runtime: str = "rt") -> None:
        super().__init__()
        self.runtime = runtime  # the module's alias of kflow_runtime (kflow.scope)
        self.found: dict[str, OptionalInput] = {}

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if not _is_namespace_get(updated) or not 1 <= len(updated.args) <= 2:
            return updated
        key = updated.args[0].value
        if not isinstance(key, cst.SimpleString) or updated.args[0].keyword is not None:
            return updated
        name = key.evaluated_value
        if not isinstance(name, str) or not name.isidentifier():
            return updated
        default = updated.args[1].value if len(updated.args) == 2 else cst.Name("None")
        in_signature = _is_immutable(default)
        self.found.setdefault(
            name, OptionalInput(name, cst.Module([]).code_for_node(default), in_signature)
        )
        if in_signature and self.found[name].in_signature:
            return cst.Name(name)
        return cst.IfExp(
            test=cst.Comparison(
                left=cst.Name(name),
                comparisons=[
                    cst.ComparisonTarget(
                        cst.IsNot(), cst.Attribute(cst.Name(self.runtime), cst.Name("MISSING"))
                    ),
                ],
            ),
            body=cst.Name(name),
            orelse=default,
            lpar=[cst.LeftParen()],
            rpar=[cst.RightParen()],
        )


class LoggerNames(cst.CSTTransformer):
    """`logging.getLogger(__name__)` -> `logging.getLogger("kflow.<workflow>.<node>")`.

    In the guide's node code `__name__` means "this code": compiled, it would be the
    generated module's name (`kflow_generated_<hash>`, or `__main__`), so the logger gets
    the node's own readable name instead.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.changed = 0

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        func = updated.func
        called = func.attr.value if isinstance(func, cst.Attribute) else (
            func.value if isinstance(func, cst.Name) else None)
        if called != "getLogger" or len(updated.args) != 1:
            return updated
        arg = updated.args[0]
        if arg.keyword is not None or arg.star or not (
                isinstance(arg.value, cst.Name) and arg.value.value == "__name__"):
            return updated
        self.changed += 1
        value = cst.SimpleString(_quoted(self.name))
        return updated.with_changes(args=[arg.with_changes(value=value)])


def _quoted(text: str) -> str:
    """`text` as a double-quoted Python string literal (black's choice of quotes)."""
    import json

    return json.dumps(text, ensure_ascii=False)


class GetResource(cst.CSTTransformer):
    """`await get_resource("name")` -> `name`, the declared resource's parameter.

    Kailash's node code reaches a resource this way; kflow passes resources to the node's
    function, so the call becomes the parameter itself, resolved when compiling. A call
    whose argument is not a literal resource name, or that is not awaited, is recorded in
    `problems` (with its position) for a located error.
    """

    METADATA_DEPENDENCIES = (cst.metadata.PositionProvider,)

    def __init__(self) -> None:
        super().__init__()
        # name -> (line, col) of its first request, in the code's own lines
        self.found: dict[str, tuple[int, int]] = {}
        self.problems: list[tuple[str, int, int]] = []
        self._awaited: set[int] = set()

    def _position(self, node: cst.CSTNode) -> tuple[int, int]:
        start = self.get_metadata(cst.metadata.PositionProvider, node).start
        return start.line, start.column

    def visit_Await(self, node: cst.Await) -> None:
        self._awaited.add(id(node.expression))

    def leave_Await(self, original: cst.Await, updated: cst.Await) -> cst.BaseExpression:
        name = self._requested(original.expression)
        if name is None:
            return updated
        self.found.setdefault(name, self._position(original))
        return cst.Name(name, lpar=updated.lpar, rpar=updated.rpar)

    def visit_Call(self, node: cst.Call) -> None:
        if not _is_get_resource(node):
            return
        if self._requested(node) is None:
            self.problems.append(("the resource's name must be a string literal, such as "
                                  "get_resource('db')", *self._position(node)))
        elif id(node) not in self._awaited:
            self.problems.append(("get_resource(...) must be awaited", *self._position(node)))

    @staticmethod
    def _requested(expr: cst.BaseExpression) -> str | None:
        if not (isinstance(expr, cst.Call) and _is_get_resource(expr)) or len(expr.args) != 1:
            return None
        arg = expr.args[0]
        if arg.keyword is not None or arg.star or not isinstance(arg.value, cst.SimpleString):
            return None
        name = arg.value.evaluated_value
        return name if isinstance(name, str) and name.isidentifier() else None


def _is_get_resource(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Name) and call.func.value == "get_resource"


def return_result(module: cst.Module, name: str = "result") -> cst.Module:
    """Append `return result` so the node's output is the value of `result`
    (or of `name`: a parallel map's code returns its `process_item`).

    A plain function, not a transformer: it touches only the module's last
    statement, and a transformer would walk the whole tree to get there.
    """
    ret = cst.SimpleStatementLine([cst.Return(cst.Name(name))])
    return module.with_changes(body=[*module.body, ret])


def as_function_body(module: cst.Module) -> str:
    """The module's statements as an indented function body, strings left untouched.

    LibCST re-indents statements but not the inside of multi-line string literals,
    which must keep their exact content.
    """
    body = list(module.body) or [cst.SimpleStatementLine([cst.Pass()])]
    # Keep the code's leading comments, not the blank lines a triple-quoted string opens with.
    header = [line for line in module.header if line.comment is not None]
    body[0] = body[0].with_changes(leading_lines=[*header, *body[0].leading_lines])
    fn = cst.FunctionDef(
        name=cst.Name("_"),
        params=cst.Parameters(),
        body=cst.IndentedBlock(body=body, footer=module.footer),
    )
    text = cst.Module(body=[fn]).code
    return text.split("\n", 1)[1].rstrip("\n")
