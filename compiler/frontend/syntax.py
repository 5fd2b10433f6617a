"""The AST: one frozen dataclass per grammar rule, each with the span it came from.

The AST is what the file says, nothing more: names are unresolved and nothing
is typed. `lower.py` turns it into typed IR. `format_module` prints it back as
text (the `parsed` stage of `tapeless ir`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.source import Span


@dataclass(frozen=True)
class Ident:
    name: str
    span: Span


# ---- expressions -------------------------------------------------------------
@dataclass(frozen=True)
class Expr:
    span: Span


@dataclass(frozen=True)
class Name(Expr):
    id: str


@dataclass(frozen=True)
class Num(Expr):
    value: int | float
    text: str


@dataclass(frozen=True)
class Str(Expr):
    value: str


@dataclass(frozen=True)
class Bool(Expr):
    value: bool


@dataclass(frozen=True)
class NamedConst(Expr):
    """`inf` or `pi`."""

    id: str


@dataclass(frozen=True)
class NoneLit(Expr):
    pass


@dataclass(frozen=True)
class BinOp(Expr):
    op: str  # + - * / @ **
    left: Expr
    right: Expr


@dataclass(frozen=True)
class UnOp(Expr):
    op: str  # + -
    operand: Expr


@dataclass(frozen=True)
class Compare(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Keyword:
    name: Ident
    value: Expr
    span: Span


@dataclass(frozen=True)
class Call(Expr):
    func: Ident
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]


@dataclass(frozen=True)
class Slice(Expr):
    start: Expr | None
    stop: Expr | None
    step: Expr | None


@dataclass(frozen=True)
class EllipsisItem(Expr):
    pass


@dataclass(frozen=True)
class Index(Expr):
    base: Expr
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Attr(Expr):
    base: Expr
    attr: Ident


@dataclass(frozen=True)
class ListExpr(Expr):
    items: tuple[Expr, ...]


# ---- types, statements, items -------------------------------------------------
@dataclass(frozen=True)
class DimExpr:
    value: int | str
    span: Span


@dataclass(frozen=True)
class TypeExpr:
    dtype: Ident
    dims: tuple[DimExpr, ...] | None  # None: no brackets (a scalar)
    span: Span


@dataclass(frozen=True)
class Param:
    name: Ident
    type: TypeExpr
    span: Span


@dataclass(frozen=True)
class Assign:
    targets: tuple[Ident, ...]
    value: Expr
    span: Span


@dataclass(frozen=True)
class IndexAssign:
    """`ys[t] = v` (inside a loop, on a carried array): ys with one slice replaced."""

    target: Ident
    items: tuple[Expr, ...]
    value: Expr
    span: Span


@dataclass(frozen=True)
class Return:
    values: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class For:
    """`for var in range(...) { body }`; `iter` is the expression after `in` (lowering checks
    that it is a call of `range`)."""

    var: Ident
    iter: Expr
    body: tuple[Stmt, ...]
    span: Span


Stmt = Assign | IndexAssign | Return | For


@dataclass(frozen=True)
class FnDef:
    name: Ident
    params: tuple[Param, ...]
    result: tuple[TypeExpr, ...] | None  # None: not declared
    result_is_tuple: bool
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True)
class Directive:
    kind: str  # grad | vjp | jvp | hvp
    fn: Ident
    wrt: tuple[Ident, ...]
    alias: Ident | None
    span: Span

    @property
    def emitted_name(self) -> str:
        return self.alias.name if self.alias else f"{self.fn.name}_{self.kind}"


@dataclass(frozen=True)
class Module:
    items: tuple[FnDef | Directive, ...]
    broken: frozenset = frozenset()  # names defined by items that failed to parse


# ---- printing (the `parsed` stage) ---------------------------------------------
_PREC = {"compare": 1, "+": 2, "-": 2, "*": 3, "/": 3, "%": 3, "@": 3, "unary": 4, "**": 5, "postfix": 6}


def format_expr(e: Expr, parent: int = 0) -> str:
    """e as text, parenthesised where precedence needs it. Written with a stack of pieces, not
    one call per level: 20,000 nested calls or minus signs print in linear time."""
    out: list[str] = []
    todo: list[str | tuple[Expr, int]] = [(e, parent)]
    while todo:
        piece = todo.pop()
        if isinstance(piece, str):
            out.append(piece)
        else:
            todo.extend(reversed(_pieces(*piece)))
    return "".join(out)


def _joined(items, sep: str = ", ") -> list:
    """Pieces of items (expressions or pieces lists) separated by sep."""
    out: list = []
    for i, item in enumerate(items):
        if i:
            out.append(sep)
        out.extend(item if isinstance(item, list) else [(item, 0)])
    return out


def _pieces(e: Expr, parent: int) -> list[str | tuple[Expr, int]]:
    """The text of e as strings and (operand, the precedence it sits under) pairs."""
    def wrap(pieces: list, prec: int) -> list:
        return ["(", *pieces, ")"] if prec <= parent else pieces

    if isinstance(e, Name):
        return [e.id]
    if isinstance(e, Num):
        return [e.text]
    if isinstance(e, Str):
        return [f'"{e.value}"']
    if isinstance(e, Bool):
        return ["true" if e.value else "false"]
    if isinstance(e, NamedConst):
        return [e.id]
    if isinstance(e, NoneLit):
        return ["None"]
    if isinstance(e, EllipsisItem):
        return ["..."]
    if isinstance(e, BinOp):
        p = _PREC[e.op]
        if e.op == "**":  # right-associative
            return wrap([(e.left, p), " ** ", (e.right, p - 1)], p)
        return wrap([(e.left, p - 1), f" {e.op} ", (e.right, p)], p)
    if isinstance(e, UnOp):
        return wrap([e.op, (e.operand, _PREC["unary"] - 1)], _PREC["unary"])
    if isinstance(e, Compare):
        p = _PREC["compare"]
        return wrap([(e.left, p), f" {e.op} ", (e.right, p)], p)
    if isinstance(e, Call):
        args = list(e.args) + [[f"{k.name.name}=", (k.value, 0)] for k in e.kwargs]
        return [f"{e.func.name}(", *_joined(args), ")"]
    if isinstance(e, Slice):
        pieces = [(x, 0) if x is not None else "" for x in (e.start, e.stop)]
        return [pieces[0], ":", pieces[1]] + ([":", (e.step, 0)] if e.step is not None else [])
    if isinstance(e, Index):
        return [(e.base, _PREC["postfix"] - 1), "[", *_joined(e.items), "]"]
    if isinstance(e, Attr):
        return [(e.base, _PREC["postfix"] - 1), f".{e.attr.name}"]
    if isinstance(e, ListExpr):
        return ["[", *_joined(e.items), "]"]
    raise TypeError(f"not an expression: {e!r}")


def format_type(t: TypeExpr) -> str:
    if t.dims is None:
        return t.dtype.name
    return f"{t.dtype.name}[{', '.join(str(d.value) for d in t.dims)}]"


def _format_body(body: tuple[Stmt, ...], indent: str, out: list[str]) -> None:
    for s in body:
        if isinstance(s, Assign):
            lhs = ", ".join(t.name for t in s.targets)
            out.append(f"{indent}{lhs} = {format_expr(s.value)}  # line {s.span.line}")
        elif isinstance(s, IndexAssign):
            items = ", ".join(format_expr(i) for i in s.items)
            out.append(f"{indent}{s.target.name}[{items}] = {format_expr(s.value)}  # line {s.span.line}")
        elif isinstance(s, For):
            out.append(f"{indent}for {s.var.name} in {format_expr(s.iter)} {{  # line {s.span.line}")
            _format_body(s.body, indent + "    ", out)
            out.append(f"{indent}}}")
        else:
            vals = ", ".join(format_expr(v) for v in s.values)
            out.append(f"{indent}return {vals}  # line {s.span.line}")


def format_module(m: Module) -> str:
    """A canonical re-rendering of the AST: one statement per line, explicit parentheses."""
    out: list[str] = []
    for item in m.items:
        if isinstance(item, FnDef):
            params = ", ".join(f"{p.name.name}: {format_type(p.type)}" for p in item.params)
            result = ""
            if item.result is not None:
                types = ", ".join(format_type(t) for t in item.result)
                result = f" -> ({types})" if item.result_is_tuple else f" -> {types}"
            out.append(f"fn {item.name.name}({params}){result} {{  # line {item.span.line}")
            _format_body(item.body, "    ", out)
            out.append("}")
        else:
            wrt = ", ".join(w.name for w in item.wrt)
            alias = f" as {item.alias.name}" if item.alias else ""
            out.append(f"{item.kind} {item.fn.name} wrt {wrt}{alias}  # line {item.span.line}")
    return "\n".join(out) + "\n"
