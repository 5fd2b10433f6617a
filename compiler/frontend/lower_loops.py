"""Lowering of loops: `for NAME in range(...) { ... }`, `NAME[i] = v` and the dynamic index
`x[t]` (docs/language.md, "Loops"). The IR records (the loop, dyn_index, dyn_update) and
their rules are primitives/loops.py; this file only decides what the body's names are.

* A name bound before the loop and assigned in the body (at any depth) is *carried*: inside
  the body it starts as a carry variable, and after the loop it is the loop's result.
  Names first bound in the body, and the loop variable, are local to one iteration.
* A carry whose value before the loop is weak (`s = 0.0`, `ys = zeros([T, N])`) takes the
  dtype the first iteration gives it (`s + x[t]` for an f32 `x` is f32), as Python would: the
  body is lowered once with the weak value in place, quietly, to see that dtype, then for real.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.diagnostics import Sink, UserError
from ..core.ir import Node, hint, span_scope, topo_order
from ..core.source import Span
from ..core.types import BroadcastError, DimLike, TensorType, broadcast_shapes, dim_text
from ..primitives import algebra as B
from ..primitives.builtin_functions import static_dim
from . import syntax as ast

BOUNDS = ("range bounds must be integers known when the function is called: literals, size symbols "
          "and + - * of them")
DYNAMIC = "a dynamic index must be computed from loop variables and sizes"


def _loops():
    from ..primitives import loops  # (imported late: the IR side lands separately)

    return loops


@dataclass
class Loop:
    """The innermost loop around a statement being lowered."""

    var: str
    line: int
    carried: frozenset[str]
    length: str | None  # the loop's trip count as text, for an example in a message


def statements(lw, body: tuple[ast.Stmt, ...], scope) -> bool:
    """Lower a loop body's statements into scope; False if any failed (each reported)."""
    ok = True
    for stmt in body:
        ok = lw.statement(stmt, scope) and ok
    return ok


def assigned_names(body: tuple[ast.Stmt, ...]) -> list[str]:
    """The names a body assigns, at any depth, in order of first assignment."""
    out: dict[str, None] = {}
    for stmt in body:
        if isinstance(stmt, ast.Assign):
            out.update(dict.fromkeys(t.name for t in stmt.targets))
        elif isinstance(stmt, ast.IndexAssign):
            out[stmt.target.name] = None
        elif isinstance(stmt, ast.For):
            out.update(dict.fromkeys(assigned_names(stmt.body)))
    return list(out)


def lower_for(lw, stmt: ast.For, scope) -> bool:
    """Lower a `for` statement: its carried names get the loop's results in scope."""
    ok = True
    try:
        bounds = range_bounds(lw, stmt, scope)
    except lw.Poison:
        bounds, ok = None, False
    finally:
        lw.lowered.clear()
    name = stmt.var.name
    if name in scope.env or name in scope.symbols:
        what = "a size symbol" if name in scope.symbols else "bound before the loop"
        lw.sink.error(stmt.var.span, f"the loop variable `{name}` would hide `{name}`, {what}; "
                                     "choose another name")
        ok = False
    carried = [n for n in assigned_names(stmt.body) if n in scope.env and n != name]
    inits = [scope.env[n] for n in carried]
    ok = ok and all(i is not None for i in inits)
    length = _length_text(bounds)
    if lw.inferring:
        return _one_iteration(lw, stmt, scope, carried, length) and ok
    if ok:
        retyped = _weak_dtypes(lw, stmt, scope, carried, length)
        inits = [retyped.get(n, i) for n, i in zip(carried, inits)]
    loops = _loops()
    var = loops.loop_var(name, stmt.var.span)
    body = scope.child(Loop(name, stmt.span.line, frozenset(carried), length))
    body.env[name] = var
    cvars = []
    for n, init in zip(carried, inits):
        cvars.append(loops.carry_var(n, init, stmt.span) if init is not None else None)
        body.env[n] = cvars[-1]
        if init is not None:
            body.carry_vars[cvars[-1].id] = n
    ok = statements(lw, stmt.body, body) and ok
    for n in body.env:
        if n not in scope.env:
            scope.loop_locals.setdefault(n, (stmt.span.line, n == name))
    if not ok:
        for n in carried:
            scope.env[n] = None  # later uses stay quiet: the loop's errors are reported
        return False
    news = [body.env[n] for n in carried]
    try:
        with span_scope(stmt.span):
            outs = loops.make_loop(*bounds, var, list(zip(cvars, inits)), news, stmt.span, source=scope.fn)
    except UserError as err:
        lw.sink.error(err.span or _blame(err, carried, cvars, news, body, stmt), err.message)
        for n in carried:
            scope.env[n] = None
        return False
    for n, out in zip(carried, outs):
        hint(out, n)
        scope.env[n] = out
        scope.assigned_at[n] = body.assigned_at.get(n, stmt.span)
    return True


def _blame(err: UserError, carried, cvars, news, body, stmt: ast.For) -> Span:
    """Where a carry's type changes: the body's last assignment of that name."""
    k = None
    if isinstance(err.arg, int) and 0 <= err.arg < len(carried):
        k = err.arg
    elif isinstance(err.arg, str) and err.arg in carried:
        k = carried.index(err.arg)
    else:
        k = next((i for i, (c, v) in enumerate(zip(cvars, news))
                  if c.dtype != v.dtype or c.shape != v.shape), None)
    return body.assigned_at.get(carried[k], stmt.span) if k is not None else stmt.span


def _weak_dtypes(lw, stmt: ast.For, scope, carried: list[str], length) -> dict[str, Node]:
    """The weak carries retyped to the (stronger) dtype one iteration gives them."""
    weak = [n for n in carried if scope.env[n].type.weak]
    if not weak:
        return {}
    body = scope.child(Loop(stmt.var.name, stmt.span.line, frozenset(carried), length))
    body.env[stmt.var.name] = _loops().loop_var(stmt.var.name, stmt.var.span)
    sink, lw.sink = lw.sink, Sink(muted=True)  # this pass only looks: the next one reports
    lw.inferring = True  # (nested loops: one iteration each, so nesting costs no more passes)
    try:
        statements(lw, stmt.body, body)
    finally:
        lw.sink = sink
        lw.inferring = False
    out = {}
    for n in weak:
        init, new = scope.env[n], body.env.get(n)
        if new is None or new.type.weak or new.dtype == init.dtype or new.shape != init.shape:
            continue
        if "bif".index(init.dtype.kind) <= "bif".index(new.dtype.kind):
            try:
                out[n] = B.retype(init, new.dtype)
            except UserError:  # a literal too large for that dtype: the loop reports the mismatch
                pass
    return out


def _one_iteration(lw, stmt: ast.For, scope, carried: list[str], length) -> bool:
    """A nested loop while _weak_dtypes looks at its outer loop: its body once, as the types
    of one iteration are all that pass asks."""
    body = scope.child(Loop(stmt.var.name, stmt.span.line, frozenset(carried), length))
    body.env[stmt.var.name] = _loops().loop_var(stmt.var.name, stmt.var.span)
    ok = statements(lw, stmt.body, body)
    for n in carried:
        scope.env[n] = body.env[n]
    return ok


def range_bounds(lw, stmt: ast.For, scope) -> tuple[DimLike, DimLike, int]:
    """(start, stop, step) of `range(...)`: static sizes, the step a nonzero integer."""
    it = stmt.iter
    if not isinstance(it, ast.Call) or it.func.name != "range":
        lw.fail(it.span, "a `for` loop runs over `range(...)`, as in `for t in range(T)`")
    if it.kwargs:
        lw.fail(it.kwargs[0].span, "`range` takes no keyword arguments: `range(STOP)`, `range(START, STOP)` "
                                   "or `range(START, STOP, STEP)`")
    if not 1 <= len(it.args) <= 3:
        lw.fail(it.span, f"`range` takes 1 to 3 arguments (`range(STOP)`, `range(START, STOP)`, "
                         f"`range(START, STOP, STEP)`), got {len(it.args)}")
    dims, failed = [], False
    for a in it.args:
        try:
            node = lw.expr(a, scope)
        except lw.Poison:
            failed = True
            continue
        d = static_dim(node) if node.type.rank == 0 else None
        if d is None:
            got = f", got {node.type.strong()}" if node.dtype.kind != "i" or node.type.rank else ""
            lw.sink.error(a.span, BOUNDS + got)
            failed = True
        dims.append(d)
    if failed:
        raise lw.Poison
    if len(dims) == 1:
        dims.insert(0, 0)
    if len(dims) == 2:
        dims.append(1)
    step = dims[2]
    if not isinstance(step, int):
        lw.fail(it.args[2].span, f"the step of `range` must be an integer literal, got the size `{dim_text(step)}`")
    if step == 0:
        lw.fail(it.args[2].span, "the step of `range` must not be zero")
    return dims[0], dims[1], step


def _length_text(bounds) -> str | None:
    if bounds is None:
        return None
    start, stop, step = bounds
    return dim_text(stop) if start == 0 and step == 1 else None


# ---- `NAME[i] = v` and `x[t]` -------------------------------------------------------------------
def index_assign(lw, stmt: ast.IndexAssign, scope) -> None:
    """`ys[t] = v` on an array the innermost loop carries: ys with that slice replaced."""
    name = stmt.target.name
    lhs = _lhs_span(lw, stmt)
    lw.check_target(stmt.target, scope)
    loop = scope.loop
    if loop is None:
        lw.fail(lhs, f"`{name}[...] = ...` is only allowed inside a `for` loop, on an array bound before the "
                     "loop (arrays are values: outside a loop, build a new one)")
    items = ", ".join(ast.format_expr(i) for i in stmt.items)
    if name not in loop.carried:
        lw.fail(lhs, f"`{name}[{items}] = ...` writes into a carried array: bind `{name}` before the loop, "
                     f"e.g. `{name} = {_example(lw, stmt, scope, loop)}`")
    x = lw.expr(ast.Name(stmt.target.span, name), scope)
    full = [isinstance(i, ast.Slice) and i.start is None and i.stop is None and i.step is None for i in stmt.items]
    if all(full) or any(isinstance(i, (ast.Slice, ast.EllipsisItem, ast.NoneLit)) and not f
                        for i, f in zip(stmt.items, full)):
        lw.fail(lhs, f"`{name}[...] = ...` takes indices and full slices `:`, as in `{name}[t] = v` "
                     f"or `{name}[:, t] = v`")
    if len(stmt.items) > x.type.rank:
        lw.fail(lhs, f"too many indices for {x.type.strong()}: {len(stmt.items)} given for {x.type.rank} axes")
    # (axis, index node) of each index, and the type of what they select
    picks, shape, removed = [], list(x.shape), 0
    for axis, (item, f) in enumerate(zip(stmt.items, full)):
        if not f:
            picks.append((axis - removed, index_node(lw, item, scope, x.shape[axis])))
            del shape[axis - removed]
            removed += 1
    v = lw.expr(stmt.value, scope)
    slice_shape = tuple(shape)
    if v.dtype != x.dtype:
        if v.type.weak and "bif".index(v.dtype.kind) <= "bif".index(x.dtype.kind):
            v = B.retype(v, x.dtype)
        elif x.type.weak and not v.type.weak and "bif".index(x.dtype.kind) <= "bif".index(v.dtype.kind):
            x = B.retype(x, v.dtype)  # (the quiet first pass over a weak carry: see _weak_dtypes)
        else:
            lw.fail(stmt.value.span, f"`{name}[{items}] = ...` stores {v.type.strong()} into "
                                     f"{x.type.strong()}; convert it, e.g. `{x.dtype}(...)`")
    if v.shape != slice_shape:
        try:
            fits = broadcast_shapes(v.shape, slice_shape) == slice_shape
        except BroadcastError:
            fits = False
        if not fits:
            lw.fail(stmt.value.span, f"`{name}[{items}] = ...` stores {v.type.strong()}, but "
                                     f"`{name}[{items}]` is {TensorType(x.dtype, slice_shape)}")
        v = B.broadcast_to(v, slice_shape)
    try:
        with span_scope(stmt.span):
            new = _update(x, picks, v, stmt.span)
    except UserError as err:
        lw.fail(err.span or stmt.span, err.message)
    hint(new, name)
    scope.env[name] = new
    scope.assigned_at[name] = lhs


def _lhs_span(lw, stmt: ast.IndexAssign) -> Span:
    """`ys[t]` of `ys[t] = v`, up to its `]` (the AST keeps the items' spans, not the bracket's)."""
    last = stmt.items[-1].span
    text = lw.source.lines[last.end_line - 1] if last.end_line <= len(lw.source.lines) else ""
    k = last.end_col - 1  # (0-based: the first character after the last item)
    while k < len(text) and text[k] in " \t":
        k += 1
    end = k + 2 if k < len(text) and text[k] == "]" else last.end_col
    t = stmt.target.span
    return Span(t.file, t.line, t.col, last.end_line, end)


def _update(x: Node, picks: list[tuple[int, Node]], v: Node, span) -> Node:
    """x with x[picks] = v, one index at a time: `ys[i, j] = v` is row = ys[i]; row[j] = v; ys[i] = row."""
    (axis, i), rest = picks[0], picks[1:]
    loops = _loops()
    if rest:
        v = _update(loops.dyn_index(x, i, axis, span), rest, v, span)
    return loops.dyn_update(x, i, v, axis, span)


def _example(lw, stmt: ast.IndexAssign, scope, loop: Loop) -> str:
    """`zeros([T, B, H])` for `ys[t] = h` with h: f32[B, H] in a loop over range(T)."""
    try:
        v = lw.expr(stmt.value, scope)
    except lw.Poison:
        return "zeros([...])"
    dims = [dim_text(d) for d in v.shape]
    dims.insert(min(len(stmt.items) - 1, len(dims)), loop.length or "...")
    return f"zeros([{', '.join(dims)}])"


def index_node(lw, item: ast.Expr, scope, size) -> Node:
    """The integer scalar node of one index, static or dynamic (a loop index)."""
    node = dynamic(lw, item, scope)
    if node is not None:
        return node
    k = lw.index_int(item, scope, None, what="an index")
    if isinstance(size, int) and not -size <= k < size:
        lw.fail(item.span, f"index {k} is out of range for an axis of size {size}")
    if k < 0:
        if not isinstance(size, int):
            lw.fail(item.span, "a negative index on an axis of symbolic size is not allowed here")
        k += size
    return B.literal(k)


def dynamic(lw, item: ast.Expr, scope) -> Node | None:
    """The node of an index computed from loop variables (`t`, `t - 1`, `T - 1 - t`); None for
    a static index (a literal or a size expression: the caller's rules apply)."""
    inner = item
    while isinstance(inner, ast.UnOp):
        inner = inner.operand
    if isinstance(inner, ast.Num):
        return None
    node = lw.expr(item, scope)
    if static_dim(node) is not None or node.type.rank != 0 or node.dtype.kind != "i":
        return None
    if not _loops().is_loop_index(node):
        if scope.loop is None:
            return None  # (outside loops: the caller's message, which points to `take`)
        lw.fail(item.span, DYNAMIC, "to pick elements by data, use `take(x, idx, axis)`")
    carried = next((scope.carry_vars[n.id] for n in topo_order([node]) if n.id in scope.carry_vars), None)
    if carried is not None:  # (a carry is a value the compiler cannot follow, even one counted by 1s)
        lw.fail(item.span, DYNAMIC, f"`{carried}` is carried by a loop: its value is data; index with the "
                                    "loop variable instead")
    return node


def dyn_index(lw, x: Node, dyns: list[tuple[int, Node, ast.Expr]]) -> Node:
    """x indexed at the dynamic items, (axis of x, index node, item) each, last axis first."""
    for axis, i, item in sorted(dyns, key=lambda d: -d[0]):
        try:
            with span_scope(item.span):
                x = _loops().dyn_index(x, i, axis, item.span)
        except UserError as err:
            lw.fail(err.span or item.span, err.message)
    return x
