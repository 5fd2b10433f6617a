"""Loops: `for t in range(start, stop, step) { ... }` with carried values (docs/language.md,
"Loops").

The body is a Function of its own, `(k, t, carries..., captures...) -> new carries`: k counts
the iterations from 0, t is the loop variable, the carries are the names the body assigns
that were bound before the loop, the captures every other outer value the body reads (found
here, by make_loop: the front end lowers the body over the outer scope and we cut it out).
The bounds are static sizes (ints or size polynomials), attributes, not values.

The IR gives a node one result, so a loop is a *group* of `loop` nodes, one per carry, equal
but for their `out` attribute: the sweeps ask the record for the whole group at once
(`group_vjp`), the emitter writes the loop once for all of them, and everything else sees
ordinary single-result nodes.

Derivatives:
- JVP: one loop carrying (carries, tangents), its body the body and its pushforward.
- VJP: the body's pullback, split as NAME_fwd/NAME_bwd are (autodiff/residuals.split): the
  forward values the backward reads and that depend on a carry are *stacked*: the forward
  loop also writes them into arrays [n, ...] at k (so `_fwd` lists them with their shapes);
  values of k, t and the captures alone are recomputed. The backward loop runs the same
  range in reverse, carrying the carries' cotangents and one sum per capture.
  The stacking loop computes the carries too: `merge_loops` below makes the original loop's
  nodes members of it, so the forward work is done once.

`dyn_index(x, i, axis)` and `dyn_update(x, i, v, axis, mode)` read and write one slice at a
run-time index (the loop variable): a bounds check, never wrap-around. In a body,
`dyn_update` of a carry only it reads is done in place (the loop owns its carries: it copies
an initial value it would write into).
"""
from __future__ import annotations

import itertools

import numpy as np

from ..core.diagnostics import UserError
from ..core.ir import Function, Node, group_key, hint, name_of, topo_order
from ..core.nodes import apply, const, dim_value_strong, param
from ..core.primitive import PREC_POSTFIX, Cost, Expr, Helper, Primitive, register
from ..core.substitute import substitute
from ..core.types import Dim, DimLike, DType, TensorType, dim_add, dim_subst, dim_text, symbols_in
from . import algebra as B

I64 = TensorType(DType.I64, ())
LOOP_VAR = TensorType(DType.I64, (), weak=True)  # the loop variable: a Python int, weak as a literal is
_fresh = itertools.count(1_000_000)  # positions of the front end's provisional body parameters


class Body:
    """A loop's body as a node attribute, printed as its name; equal when they have the same
    parameters and outputs (the same graph). `source`: the fn of the source the loop is in
    (what a run-time error names)."""

    __slots__ = ("fn", "source", "_key")

    def __init__(self, fn: Function, source: str = ""):
        self.fn = fn
        self.source = source or fn.name
        self._key = (tuple(p.id for p in fn.params), tuple(o.id for o in fn.outputs), self.source)

    def __eq__(self, other) -> bool:
        return isinstance(other, Body) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return self.fn.name

    def with_sizes(self, env: dict) -> "Body":
        """The body with size symbols replaced (a fn with a loop inlined at a call's sizes)."""
        fn = self.fn
        params = tuple(param(p.attr("name"), p.type.with_(shape=tuple(dim_subst(d, env) for d in p.shape)),
                             p.attr("position"), p.span, p.attr("carries")) for p in fn.params)
        if all(a is b for a, b in zip(params, fn.params)):
            return self
        outs = substitute(list(fn.outputs), {p.id: q for p, q in zip(fn.params, params)}, env)
        return Body(Function(fn.name, params, tuple(outs), fn.span), self.source)


# ---- building loops (the front end's contract) --------------------------------------------------------
def loop_var(name: str, span=None) -> Node:
    """The loop variable inside a body being lowered: a fresh i64 scalar parameter, weak (a
    Python int: x[t] * t of an f32 x stays f32, as in NumPy)."""
    return param(name, LOOP_VAR, next(_fresh), span)


def carry_var(name: str, init: Node, span=None) -> Node:
    """A carried value inside a body being lowered, typed as its initial value (made strong)."""
    return param(name, init.type.strong(), next(_fresh), span)


def iterations(start: DimLike, stop: DimLike, step: int) -> DimLike:
    """len(range(start, stop, step)) as a size: stop - start for a step of 1 (a run-time check
    keeps it >= 0), exact for literal bounds; else a UserError (not a size polynomial)."""
    if isinstance(start, int) and isinstance(stop, int):
        return len(range(start, stop, step))
    if step == 1:
        return dim_add(stop, start, -1)
    if step == -1:
        return dim_add(start, stop, -1)
    raise UserError(f"a loop over range({dim_text(start)}, {dim_text(stop)}, {step}) that must be differentiated "
                    "needs a step of 1 or -1 or literal bounds (tapeless cannot size its saved values yet)")


def make_loop(start: DimLike, stop: DimLike, step: int, var: Node, carries: list[tuple[Node, Node]],
              new_values: list[Node], span=None, name: str = "loop", source: str = "") -> list[Node]:
    """The carries' values after the loop. `var`, the carry variables and `new_values` come from
    lowering the body over the outer scope; the outer values it reads become captures."""
    if step == 0:
        raise UserError("a range's step must not be 0")
    for (cv, init), new in zip(carries, new_values):
        if new.dtype != cv.dtype or new.shape != cv.shape:
            raise UserError(f"`{cv.attr('name')}` is carried by the loop, so its type must stay {cv.type}; "
                            f"the body makes it {new.type.strong()}")
    inner = {var.id} | {cv.id for cv, _ in carries}
    new_values = _hoisted(new_values, inner, start, stop, step)
    order = topo_order(new_values)
    depends: set[int] = set(inner)
    for n in order:
        if n.id not in depends and any(i.id in depends for i in n.inputs):
            depends.add(n.id)
    captures: list[Node] = []
    seen: set[int] = set()

    def capture(n: Node) -> None:
        if n.id not in depends and not n.is_literal and n.id not in seen:
            seen.add(n.id)
            captures.append(n)

    for n in order:
        if n.id in depends and n.id not in inner:
            for i in n.inputs:
                capture(i)
    for v in new_values:
        capture(v)  # a carry given a value the loop does not change
    # the body over its own parameters: k, t, the carries, the captures
    k = param("k", I64, 0)
    t = param(var.attr("name"), LOOP_VAR, 1)
    cps = [param(cv.attr("name"), cv.type, 2 + j) for j, (cv, _) in enumerate(carries)]
    pps = [param(name_of(c) or f"c{j}", c.type.strong(), 2 + len(carries) + j) for j, c in enumerate(captures)]
    mapping = {var.id: t} | {cv.id: p for (cv, _), p in zip(carries, cps)} | \
              {c.id: (p if not c.type.weak else B.retype(p, c.dtype, True)) for c, p in zip(captures, pps)}
    outs = [B.retype(o, o.dtype) if o.type.weak else o for o in substitute(new_values, mapping)]
    # size symbols the body uses that no parameter's shape gives: passed as integers
    base = 2 + len(cps) + len(pps)
    missing = _missing_symbols(outs, (k, t, *cps, *pps))
    sizes = [param(f"size_{s}", I64, base + j, carries=s) for j, s in enumerate(missing)]
    captures += [dim_value_strong(s) for s in missing]
    pps += sizes
    body = Function(f"{source}_{name}" if source else name, (k, t, *cps, *pps), tuple(outs), span)
    inits = [B.retype(init, init.dtype) if init.type.weak else init for _, init in carries]
    return loop_nodes(body, inits, [B.retype(c, c.dtype) if c.type.weak else c for c in captures],
                      start, stop, step, False, span, source=source)


def _missing_symbols(outputs, params) -> list[str]:
    used: set[str] = set()
    for n in topo_order(outputs):
        used |= symbols_in(tuple(n.shape))
        for _, v in n.attrs:
            used |= symbols_in(v) if not isinstance(v, Body) else set()
    have = {d.symbol_name for p in params for d in p.shape if isinstance(d, Dim) and d.symbol_name}
    return sorted(used - have)


def _hoisted(new_values: list[Node], inner: set[int], start, stop, step) -> list[Node]:
    """`x[i] @ w`, x and w from outside the loop and the loop running once per row of x, as
    `(x @ w)[i]`: the product of every row before the loop, one GEMM over the stack of rows, not
    a small one per iteration (an RNN's input projection). Its gradient then is one GEMM after
    the backward loop too (w-bar = x^T (x @ w)-bar over all rows)."""
    try:
        n = iterations(start, stop, step)
    except UserError:
        return new_values
    order = topo_order(new_values)
    depends = set(inner)
    for m in order:
        if m.id not in depends and any(i.id in depends for i in m.inputs):
            depends.add(m.id)
    mapping = {}
    for m in order:
        if m.op.name != "matmul" or m.id not in depends:
            continue
        a, b = m.inputs
        if (a.op.name == "dyn_index" and a.attr("axis") == 0 and a.inputs[0].id not in depends
                and b.id not in depends and b.type.rank <= 2 and a.inputs[0].type.rank >= 2
                and a.inputs[0].shape[0] == n):
            product = apply("matmul", a.inputs[0], b, span=m.span)
            if name_of(a.inputs[0]) and name_of(b):
                hint(product, f"{name_of(a.inputs[0])}_{name_of(b)}")  # (x @ w: "x_w")
            mapping[m.id] = apply("dyn_index", product, a.inputs[1], axis=0, span=a.span)
    return substitute(new_values, mapping) if mapping else new_values


def loop_nodes(body: Function, inits: list[Node], captures: list[Node], start, stop, step, reverse, span=None,
               source: str = "", **marks):
    """The group: one `loop` node per carry. `marks` (a VJP's loops, for passes/checkpoint.py):
    stacks = per trailing carry that is a stack, the carry it holds (-1: another value);
    stacked = (first, count) of the captures that are a forward loop's stacks."""
    body, captures, marks = _without_unread_captures(body, len(inits), captures, marks)
    attrs = dict(body=Body(body, source), start=start, stop=stop, step=step, reverse=reverse, n_carries=len(inits), **marks)
    return [apply("for_loop", *inits, *captures, span=span, out=j, **attrs) for j in range(len(inits))]


def _without_unread_captures(body: Function, nc: int, captures: list[Node], marks: dict):
    """A derived body (a VJP's backward) may not read every value the loop had: such a capture
    is dropped, so that nothing keeps it alive (a `_fwd` would save it for nothing)."""
    read = {n.id for n in topo_order(body.outputs)}
    caps = body.params[2 + nc:]
    keep = [i for i, p in enumerate(caps) if p.id in read or p.attr("carries") is not None]
    if len(keep) == len(caps):
        return body, captures, marks
    params = body.params[:2 + nc] + tuple(caps[i] for i in keep)
    sizes: list[Node] = []  # (a dropped capture may have been what gave a size symbol)
    new = _function(body.name, params, list(body.outputs), body.span, sizes)
    if "stacked" in marks:
        first, count = marks["stacked"]
        marks = dict(marks, stacked=(sum(1 for i in keep if i < first), count))
    return new, [captures[i] for i in keep] + sizes, marks


group_of = group_key  # (core/ir.py: what the members of a node's group share)


def parts(node: Node):
    """(body, inits, captures) of a loop node."""
    body = node.attr("body").fn
    nc = node.attr("n_carries")
    return body, list(node.inputs[:nc]), list(node.inputs[nc:])


def _infer(types, attrs):
    body = attrs["body"].fn
    nc = attrs["n_carries"]
    for j, (t, p) in enumerate(zip(types, body.params[2:])):
        if t.dtype != p.dtype or len(t.shape) != len(p.shape):  # (sizes may be substituted at a call)
            raise AssertionError(f"loop {body.name}: input {j} is {t}, its parameter {p.type}")
    return types[attrs["out"]].strong()


# ---- derivatives ----------------------------------------------------------------------------------------
def _jvp(ctx, node, ts):
    """One loop carrying the carries and their tangents. Every member of the group asks with the
    same tangents: the group is made once (parameters are never interned, so a body made twice
    would be two loops) and kept in the sweep's context."""
    if all(t is None for t in ts):
        return None
    key = ("loop jvp", group_of(node), tuple(t.id if t is not None else None for t in ts))
    made = ctx.primal_values.get(key)
    if made is None:
        made = ctx.primal_values[key] = _jvp_group(ctx, node, ts)
    group, moving_c = made
    nc = node.attr("n_carries")
    j = node.attr("out")
    return group[nc + moving_c.index(j)] if j in moving_c else None


def _jvp_group(ctx, node, ts):
    body, inits, caps = parts(node)
    nc = len(inits)
    t_inits, t_caps = ts[:nc], ts[nc:]
    cps, pps = list(body.params[2:2 + nc]), list(body.params[2 + nc:])
    moving_c = [j for j in range(nc) if cps[j].dtype.is_float]
    moving_p = [i for i, t in enumerate(t_caps) if t is not None]
    base = len(body.params)
    tc = [param(f"t_{cps[j].attr('name')}", cps[j].type, base + n) for n, j in enumerate(moving_c)]
    tp = [param(f"t_{pps[i].attr('name')}", pps[i].type, base + len(tc) + n) for n, i in enumerate(moving_p)]
    pushed = ctx.pushforward(list(body.outputs), [cps[j] for j in moving_c] + [pps[i] for i in moving_p], tc + tp)
    new_t = [pushed[j] if pushed[j] is not None else B.zeros_like(body.outputs[j]) for j in moving_c]
    # body' (k, t, carries, tangent carries, captures, tangent captures)
    params = (*body.params[:2], *cps, *tc, *pps, *tp)
    new_caps = caps + [t_caps[i] for i in moving_p]
    new_body = _function(f"{body.name}_jvp", params, merge_loops(list(body.outputs) + new_t), body.span, new_caps)
    t_init = [t_inits[j] if t_inits[j] is not None else B.zeros_like(inits[j]) for j in moving_c]
    group = loop_nodes(new_body, inits + t_init, new_caps, node.attr("start"),
                       node.attr("stop"), node.attr("step"), node.attr("reverse"), node.span,
                       source=node.attr("body").source)
    return group, moving_c


def _renumber(params) -> tuple[Node, ...]:
    return tuple(param(p.attr("name"), p.type, k) for k, p in enumerate(params))


def group_vjp(ctx, members: dict[int, Node], cts: dict[int, Node], needs: list[bool]) -> list[Node | None]:
    """The inputs' cotangents of a loop group, from the cotangents of its members (by `out`)."""
    node = next(iter(members.values()))
    body, inits, caps = parts(node)
    nc = len(inits)
    start, stop, step, reverse = (node.attr(a) for a in ("start", "stop", "step", "reverse"))
    k, t = body.params[:2]
    cps, pps = list(body.params[2:2 + nc]), list(body.params[2 + nc:])
    fl = [j for j in range(nc) if cps[j].dtype.is_float]  # carries a cotangent flows through
    wrt_p = [i for i, need in enumerate(needs[nc:]) if need and pps[i].dtype.is_float]
    cb = [param(f"d_{cps[j].attr('name')}", cps[j].type, 100_000 + n) for n, j in enumerate(fl)]
    grads = ctx.pullback([body.outputs[j] for j in fl], cb, [cps[j] for j in fl] + [pps[i] for i in wrt_p])
    grads = [g if g is not None else B.zeros_like(w) for g, w in zip(grads, [cps[j] for j in fl] + [pps[i] for i in wrt_p])]
    sp = ctx.split(list(body.outputs), list(body.params), grads, cb)
    carry_ids = {cps[j].id for j in range(nc)}
    stacked = [r for r in sp.residuals if _reaches(r, carry_ids)]
    try:
        n_iter = iterations(start, stop, step) if stacked else 0  # (nothing stacked: no size needed)
    except UserError as e:
        raise UserError(e.message, node.span) from None
    # A carry the backward reads (or its new value) is stacked once, with one more row: row
    # p holds it before iteration p, row p + 1 after (an RNN's h_t and tanh(...) = h_(t+1) are
    # one stack, not two). Other values are stacked as they are. (Forward loops only: in a
    # reverse one, k does not count the iterations done.)
    before = {cps[j].id: j for j in range(nc)} if not reverse else {}
    after = {}
    if not reverse:
        for j in range(nc):
            after.setdefault(body.outputs[j].id, j)
    by_carry = sorted({before.get(r.id, after.get(r.id)) for r in stacked} - {None})
    others = [r for r in stacked if r.id not in before and r.id not in after]
    # the forward loop: the body, and each stacked value written into its array at k
    base = len(body.params)
    rows = dim_add(n_iter, 1)
    cstacks = [param(f"{cps[j].attr('name')}_stack", TensorType(cps[j].dtype, (rows, *cps[j].shape)), base + s)
               for s, j in enumerate(by_carry)]
    stacks = [param(f"{name_of(r) or 'r'}_stack", TensorType(r.dtype, (n_iter, *r.shape)), base + len(cstacks) + s)
              for s, r in enumerate(others)]
    one = B.like_const(1, k)
    writes = [apply("dyn_update", st, B.add(k, one), body.outputs[j], axis=0, mode="set", checked=False)
              for st, j in zip(cstacks, by_carry)]
    writes += [apply("dyn_update", st, k, r, axis=0, mode="set", checked=False) for st, r in zip(stacks, others)]
    fwd_params = (*body.params[:2 + nc], *cstacks, *stacks, *pps)
    fwd_caps = list(caps)
    fwd_body = _function(f"{body.name}_fwd", fwd_params, list(body.outputs) + writes, body.span, fwd_caps)
    first = [apply("stack_first", inits[j], rows=rows) for j in by_carry]
    fwd = loop_nodes(fwd_body, inits + first + [B.zeros(st.shape, st.dtype) for st in stacks], fwd_caps,
                     start, stop, step, reverse, node.span, source=node.attr("body").source,
                     stacks=tuple(by_carry) + (-1,) * len(stacks))
    saved = fwd[nc:]
    for st, s in zip(cstacks + stacks, saved):
        hint(s, st.attr("name"))
    all_stacks = cstacks + stacks
    # the backward loop: the same range reversed, carrying the cotangents and the captures' sums
    sums = [param(f"d_{pps[i].attr('name')}", pps[i].type, 200_000 + n) for n, i in enumerate(wrt_p)]
    stack_in = [param(st.attr("name"), st.type, 300_000 + s) for s, st in enumerate(all_stacks)]
    at_k = {r.id: apply("dyn_index", sa, k, axis=0, checked=False) for r, sa in zip(others, stack_in[len(cstacks):])}
    for sa, j in zip(stack_in, by_carry):
        at_k[cps[j].id] = apply("dyn_index", sa, k, axis=0, checked=False)
        if body.outputs[j].id in after and after[body.outputs[j].id] == j:
            at_k[body.outputs[j].id] = apply("dyn_index", sa, B.add(k, one), axis=0, checked=False)
    g = merge_loops(substitute(grads, at_k))
    new_cb = g[:len(fl)]
    once = t if step in (1, -1) else None  # (each value of t comes once: a slice at t is written once)
    new_sums = [accumulate(s, d, once) for s, d in zip(sums, g[len(fl):])]
    bwd_params = (k, t, *cb, *sums, *pps, *stack_in)
    bwd_caps = caps + saved
    bwd_body = _function(f"{body.name}_bwd", bwd_params, new_cb + new_sums, body.span, bwd_caps)
    ct_inits = [cts.get(j) if cts.get(j) is not None else B.zeros_like(inits[j]) for j in fl]
    bwd = loop_nodes(bwd_body, ct_inits + [B.zeros_like(caps[i]) for i in wrt_p], bwd_caps,
                     start, stop, step, not reverse, node.span, source=node.attr("body").source,
                     stacked=(len(caps), len(saved)))
    out: list[Node | None] = [None] * (nc + len(caps))
    for n, j in enumerate(fl):
        out[j] = bwd[n] if needs[j] else None
    for n, i in enumerate(wrt_p):
        out[nc + i] = bwd[len(fl) + n]
    return out


def accumulate(total: Node, delta: Node, once: Node | None = None) -> Node:
    """total + delta, written as an update at the index when delta is zeros but for one slice
    (a captured x read as x[t]: its cotangent is one slice per iteration, never a whole x). At
    an index no other iteration writes (`once`: the loop variable of a step of 1) the slice of
    the sum is still 0: set, not added (no read of it)."""
    terms = _terms(delta)
    slices = [d for d in terms if d.op.name == "dyn_update" and d.attr("mode") == "add" and _is_zeros(d.inputs[0])]
    rest = [d for d in terms if not any(d is s for s in slices)]
    for d in rest:  # (a whole-array term: added as it is)
        total = B.add(total, d)
    for d in slices:  # x[t] and x[t - 1] read in one step: two slice updates, never a whole array
        mode = "set" if once is not None and d.inputs[1] is once and len(slices) == 1 and not rest else "add"
        total = apply("dyn_update", total, d.inputs[1], d.inputs[2], axis=d.attr("axis"), mode=mode,
                      checked=d.attr("checked", True))
    return total


def _terms(x: Node) -> list[Node]:
    """The terms of a sum of cotangents (add nodes of the same type), in order."""
    if x.op.name == "add" and all(i.type == x.type for i in x.inputs):
        return _terms(x.inputs[0]) + _terms(x.inputs[1])
    return [x]


def _is_zeros(x: Node) -> bool:
    return x.op.name == "full" and x.attr("value") == 0


def _reaches(r: Node, ids: set[int]) -> bool:
    return any(n.id in ids for n in topo_order([r]))


def _function(name, params, outputs, span, captures: list[Node]) -> Function:
    """A body with its parameters renumbered 0.. in order; a size symbol it uses that no
    parameter's shape gives becomes one more parameter (appended to `captures` as its value)."""
    new = _renumber(params)
    outs = substitute(list(outputs), {p.id: q for p, q in zip(params, new)})
    missing = _missing_symbols(outs, new)
    new += tuple(param(f"size_{s}", I64, len(new) + j, carries=s) for j, s in enumerate(missing))
    captures += [dim_value_strong(s) for s in missing]
    return Function(name, new, tuple(outs), span)


# ---- the numeric meaning: run the body --------------------------------------------------------------------
def iterate(node: Node, args: list, dim, number, run) -> list:
    """The carries after the loop `node` with inputs `args`: the body run at each iteration in
    its order (reversed for a backward loop). dim(size) -> int gives the bounds; number(int)
    makes k and t; run(outputs, {param id: value}) evaluates the body. What the SymPy meaning,
    the check's evaluator (tools/numeric_meanings.py) and `unroll` share."""
    body, inits, _ = parts(node)
    nc = len(inits)
    carry, caps = list(args[:nc]), list(args[nc:])
    steps = list(enumerate(range(dim(node.attr("start")), dim(node.attr("stop")), node.attr("step"))))
    for k, t in (reversed(steps) if node.attr("reverse") else steps):
        values = [number(k), number(t)] + carry + caps
        carry = list(run(list(body.outputs), {p.id: v for p, v in zip(body.params, values)}))
    return carry


def _sympy(ctx, args, node):
    def run(outputs, values):
        return [np.asarray(v, dtype=object) for v in _evaluate(ctx, outputs, values)]

    arrays = [np.asarray(a, dtype=object) for a in args]
    return iterate(node, arrays, ctx.dim, lambda i: np.asarray(i, dtype=object), run)[node.attr("out")]


def _evaluate(ctx, outputs, values):
    if ctx.evaluate is not None:
        return ctx.evaluate(outputs, values)
    for n in topo_order(outputs):
        if n.id not in values:
            values[n.id] = np.asarray(n.op.sympy(ctx, [values[i.id] for i in n.inputs], n), dtype=object)
    return [values[o.id] for o in outputs]


# ---- the generated code: statements (the emitter's writer `w`: statement, arg, carries, bind) -------------
def write_loop(w, n: Node, members: dict[int, Node]) -> None:
    """`for k, t in enumerate(range(...)): c0, c1 = _body(k, t, c0, c1, captures...)`."""
    ctx = w.ctx
    body = n.attr("body").fn
    nc = n.attr("n_carries")
    fname = ctx.mod.body_function(body, n.attr("body").source)
    names = [(ctx.hint(members[j]) if j in members else None) or body.params[2 + j].attr("name") for j in range(nc)]
    carries = w.carries(n, n.inputs[:nc], names, len(members))
    caps = [w.arg(i, n).text for i in n.inputs[nc:]]
    start, stop, step = (n.attr(a) for a in ("start", "stop", "step"))
    rng = f"range({ctx.dim(start)}, {ctx.dim(stop)}, {step})"
    k, t = ctx.names.fresh("k"), ctx.names.fresh(body.params[1].attr("name"))
    steps = f"reversed(tuple(enumerate({rng})))" if n.attr("reverse") else f"enumerate({rng})"
    w.statement(f"for {k}, {t} in {steps}:", n)
    w.statement(f"    {', '.join(carries)}, = {fname}({', '.join([k, t] + carries + caps)})", n)
    w.bind(members, carries)


def _steps(w, n: Node) -> tuple[str, str]:
    """`steps = tuple(enumerate(range(...)))`, `every = sqrt(len(steps))` for a checkpointed loop."""
    ctx = w.ctx
    start, stop, step = (n.attr(a) for a in ("start", "stop", "step"))
    steps, every = ctx.names.fresh("steps"), ctx.names.fresh("every")
    w.statement(f"{steps} = tuple(enumerate(range({ctx.dim(start)}, {ctx.dim(stop)}, {step})))", n)
    w.statement(f"{every} = max(1, int(len({steps}) ** 0.5))  # carries kept every sqrt(n) iterations", n)
    return steps, every


def write_ckpt_fwd(w, n: Node, members: dict[int, Node]) -> None:
    """A VJP's forward loop at -O2: the body alone, the carries kept every sqrt(n) iterations."""
    ctx = w.ctx
    plain = n.attr("plain")
    nc = n.attr("n_carries")
    p_name = ctx.mod.body_function(plain.fn, plain.source)
    names = [(ctx.hint(members[j]) if j in members else None) or plain.fn.params[2 + j].attr("name")
             for j in range(nc)]
    written = written_in_place(plain.fn)
    cs = w.carries(n, n.inputs[:nc], names, len(members))
    caps = [w.arg(i, n).text for i in n.inputs[nc:]]
    steps, every = _steps(w, n)
    saved, j, k, t = (ctx.names.fresh(x) for x in ("saved", "j", "k", plain.fn.params[1].attr("name")))
    stacks = len(plain.fn.params) - 2 - nc - len(caps)  # (the stacks the plain body does not fill)
    copy = [f"{c}.copy()" if i in written else c for i, c in enumerate(cs)]
    for line in (f"{saved} = []",
                 f"for {j} in range(0, len({steps}), {every}):",
                 f"    {saved}.append(({', '.join(copy)},))",
                 f"    for {k}, {t} in {steps}[{j}:{j} + {every}]:",
                 f"        {', '.join(cs)}, = {p_name}({', '.join([k, t] + cs + ['None'] * stacks + caps)})"):
        w.statement(line, n)
    w.bind(members, cs + [saved])


def write_ckpt_bwd(w, n: Node, members: dict[int, Node]) -> None:
    """A VJP's backward loop at -O2: each segment of sqrt(n) iterations run forward again from
    its saved carries, stacking only its own iterations, then gone back over."""
    ctx = w.ctx
    fwd, bwd = n.attr("fwd"), n.attr("bwd")
    nc, nf, nb = n.attr("n_carries"), n.attr("n_fcaps"), n.attr("n_bcarries")
    marks = n.attr("stacks")
    first, _ = n.attr("stacked")
    f_name = ctx.mod.body_function(fwd.fn, fwd.source)
    b_name = ctx.mod.body_function(bwd.fn, bwd.source)
    saved = w.arg(n.inputs[0], n).text
    fcaps = [w.arg(i, n).text for i in n.inputs[1:1 + nf]]
    bnames = [(ctx.hint(members[j]) if j in members else None) or bwd.fn.params[2 + j].attr("name")
              for j in range(nb)]
    ds = w.carries(n, n.inputs[1 + nf:1 + nf + nb], bnames, len(members))
    bcaps = [w.arg(i, n).text for i in n.inputs[1 + nf + nb:]]
    steps, every = _steps(w, n)
    j, k, kk = ctx.names.fresh("j"), ctx.names.fresh("k"), ctx.names.fresh("kk")
    t, seg = ctx.names.fresh(fwd.fn.params[1].attr("name")), ctx.names.fresh("segment")
    fs = [ctx.names.fresh(f"{fwd.fn.params[2 + i].attr('name')}_again") for i in range(nc)]
    lines = [f"for {j} in reversed(range(0, len({steps}), {every})):",
             f"    {seg} = {steps}[{j}:{j} + {every}]",
             f"    {', '.join(fs)}, = {saved}[{j} // {every}]"]
    stack_vars = []
    for s_, mark in enumerate(marks):
        st = fwd.fn.params[2 + nc + s_]
        var = ctx.names.fresh(st.attr("name"))
        rows = f"len({seg}) + 1" if mark >= 0 else f"len({seg})"
        lines.append(f"    {var} = {ctx.xp}.empty(({rows},) + {ctx.shape(st.shape[1:])}, "
                     f"dtype={ctx.dtype(st.dtype)})")
        if mark >= 0:
            lines.append(f"    {var}[0] = {fs[mark]}")
        stack_vars.append(var)
    lines += [
        f"    for {kk}, ({k}, {t}) in enumerate({seg}):",
        f"        {', '.join(fs + stack_vars)}, = {f_name}({', '.join([kk, t] + fs + stack_vars + fcaps)})",
        f"    for {kk}, ({k}, {t}) in reversed(tuple(enumerate({seg}))):",
        f"        {', '.join(ds)}, = {b_name}({', '.join([kk, t] + ds + bcaps[:first] + stack_vars + bcaps[first:])})",
    ]
    for line in lines:
        w.statement(line, n)
    w.bind(members, ds)


register(Primitive(
    "for_loop", "subgraph", _infer, None, None, _jvp, _sympy, cost=Cost.COSTLY, group_vjp=group_vjp, write=write_loop,
    doc="one carry of a for loop over range(start, stop, step) (reverse: backwards); the body is a Function "
        "(k, t, carries..., captures...) -> new carries",
))


# ---- one slice at a run-time index --------------------------------------------------------------------------
def is_loop_index(i: Node) -> bool:
    """An integer scalar computed from loop variables, literals and sizes alone."""
    if i.shape != () or i.dtype.is_float or i.dtype == DType.BOOL:
        return False
    for n in topo_order([i]):
        if n.is_param:  # a loop variable: weak (a carried integer is strong)
            if n.type != LOOP_VAR or n.attr("position") < 1_000_000:
                return False
        elif not (n.is_literal or n.op.elementwise):
            return False
    return True


def dyn_index(x: Node, i: Node, axis: int, span=None) -> Node:
    return apply("dyn_index", x, i, axis=axis, span=span)


def dyn_update(x: Node, i: Node, v: Node, axis: int, span=None) -> Node:
    return apply("dyn_update", x, i, v, axis=axis, mode="set", span=span)


def _index_infer(types, attrs):
    x, i = types
    axis = attrs["axis"]
    if i.shape != () or i.dtype.kind != "i":
        raise UserError(f"a run-time index must be an integer scalar, got {i}", arg=1)
    if not 0 <= axis < x.rank:
        raise UserError(f"index on axis {axis} of {x}", arg=0)
    return x.with_(shape=x.shape[:axis] + x.shape[axis + 1:], weak=False)


def _update_infer(types, attrs):
    x, i, v = types
    want = _index_infer([x, i], attrs)
    if v.shape != want.shape or (v.dtype != x.dtype and not v.weak):
        raise UserError(f"the slice written is {want}, the value {v}", arg=2)
    return x.strong()


AT = Helper("at", '''def _at(i, n, where):
    """i if 0 <= i < n, else ValueError naming where (a run-time index never wraps around)."""
    if not 0 <= i < n:
        raise ValueError(f"{where}: index {i} is out of range for an axis of size {n}")
    return i
''')


def _where(ctx, node) -> str:
    """Where a run-time index is, as a string literal for its message (repr: never code): the
    source fn (a loop body's own, not the helper's name) and line."""
    fn = getattr(ctx, "source_fn", "") or ctx.fn_name
    return repr(f"{fn}(), {node.span.file}:{node.span.line}" if node.span is not None else fn)


def _subscript(ctx, args, node, x_text) -> str:
    """`:, ..., i` with i checked, unless the index is one the derivative made from a checked one
    (a stack's row k, the same t the forward read: `checked` false)."""
    axis = node.attr("axis")
    if not node.attr("checked", True):
        return ":, " * axis + args[1].text
    i = f"{ctx.helper('at')}({args[1].text}, {x_text}.shape[{axis}], {_where(ctx, node)})"
    return ":, " * axis + i


def _index_emit(ctx, args, node):
    x = args[0].at(PREC_POSTFIX)
    if not x.isidentifier():  # (an expression is written once: through the helper)
        where = _where(ctx, node) if node.attr("checked", True) else "None"
        return Expr(f"{ctx.helper('index_at')}({args[0].text}, {node.attr('axis')}, {args[1].text}, {where})",
                    PREC_POSTFIX)
    return Expr(f"{x}[{_subscript(ctx, args, node, x)}]", PREC_POSTFIX)


INDEX_AT = Helper("index_at", '''def _index_at(x, axis, i, where):
    """x[..., i, ...] at axis (a view), i checked as _at does (where None: not checked)."""
    return x[(slice(None),) * axis + (i if where is None else _at(i, x.shape[axis], where),)]
''', uses=("at",))


UPDATED = Helper("updated", '''def _updated(x, axis, i, v, add, where):
    """x with its slice i along axis set to v (add: increased by v), as a new array; i checked
    as _at does."""
    out = x.copy()
    at = (slice(None),) * axis + (i if where is None else _at(i, x.shape[axis], where),)
    if add:
        out[at] += v
    else:
        out[at] = v
    return out
''', uses=("at",))


def _update_emit(ctx, args, node):
    """A new array; the emitter writes a carry of a loop body in place instead (update_in_place)."""
    where = _where(ctx, node) if node.attr("checked", True) else "None"
    return Expr(f"{ctx.helper('updated')}({args[0].text}, {node.attr('axis')}, {args[1].text}, {args[2].text}, "
                f"{node.attr('mode') == 'add'}, {where})", PREC_POSTFIX)


def update_in_place(ctx, args, node) -> str:
    """The statement that updates the carry args[0] names in place."""
    x = args[0].text
    if node.op.name == "add":
        return f"{x} += {args[1].text}"
    op = "+=" if node.attr("mode") == "add" else "="
    return f"{x}[{_subscript(ctx, args, node, x)}] {op} {args[2].text}"


def _index_vjp(ctx, node, ct, needs):
    x, i = node.inputs
    # (unchecked: the forward read the same index, checked, in the same iteration)
    return [apply("dyn_update", B.zeros_like(x), i, ct, axis=node.attr("axis"), mode="add", checked=False), None]


def _index_jvp(ctx, node, ts):
    return None if ts[0] is None else apply("dyn_index", ts[0], node.inputs[1], axis=node.attr("axis"), checked=False)


def _update_vjp(ctx, node, ct, needs):
    x, i, v = node.inputs
    axis = node.attr("axis")
    gx = gv = None
    if needs[0]:
        gx = ct if node.attr("mode") == "add" else apply("dyn_update", ct, i, B.zeros_like(v), axis=axis, mode="set",
                                                         checked=False)
    if needs[2]:
        gv = apply("dyn_index", ct, i, axis=axis, checked=False)
    return [gx, None, gv]


def _update_jvp(ctx, node, ts):
    tx, _, tv = ts
    x, i, v = node.inputs
    if tx is None and tv is None:
        return None
    tx = tx if tx is not None else B.zeros_like(x)
    tv = tv if tv is not None else B.zeros_like(v)
    return apply("dyn_update", tx, i, tv, axis=node.attr("axis"), mode=node.attr("mode"), checked=False)


def _index_meaning(ctx, args, node):
    x, i = np.asarray(args[0], dtype=object), int(args[1])
    if not 0 <= i < x.shape[node.attr("axis")]:
        raise IndexError(f"index {i} out of range")
    return np.take(x, i, axis=node.attr("axis"))


def _update_meaning(ctx, args, node):
    x, i, v = np.array(args[0], dtype=object), int(args[1]), np.asarray(args[2], dtype=object)
    at = (slice(None),) * node.attr("axis") + (i,)
    x[at] = x[at] + v if node.attr("mode") == "add" else v
    return x


register(Primitive(
    "dyn_index", "shape", _index_infer, _index_emit, _index_vjp, _index_jvp, _index_meaning,
    helpers=(AT, INDEX_AT), view=True,
    doc="x at a run-time integer index i along axis (a bounds check, never wrap-around)",
    examples=((("f64[3, 2]", "i64"), {"axis": 0}, {1: "int:0:3"}), (("f64[2, 3]", "i64"), {"axis": 1}, {1: "int:0:3"})),
))
register(Primitive(
    "dyn_update", "shape", _update_infer, _update_emit, _update_vjp, _update_jvp, _update_meaning,
    helpers=(AT, UPDATED), coerce=lambda args, attrs: [args[0], args[1], B.cast(args[2], args[0].dtype)],
    doc="x with the slice at run-time index i along axis set to v (mode 'add': increased by v)",
    examples=((("f64[3, 2]", "i64", "f64[2]"), {"axis": 0, "mode": "set"}, {1: "int:0:3"}),
              (("f64[2, 3]", "i64", "f64[2]"), {"axis": 1, "mode": "add"}, {1: "int:0:3"})),
))


def in_place_updates(body: Function) -> set[int]:
    """The dyn_update nodes of a body that may write into their carry: the carry is a parameter
    of the body that nothing else reads."""
    order = topo_order(body.outputs)
    uses: dict[int, int] = {}
    for n in order:
        for i in n.inputs:
            uses[i.id] = uses.get(i.id, 0) + 1
    for o in body.outputs:
        uses[o.id] = uses.get(o.id, 0) + 1
    # an array the body may write into: a carry only one node reads, and then (a chain of
    # updates) an update written in place that only one node reads
    owned = {p.id for p in body.params[2:2 + len(body.outputs)] if uses.get(p.id) == 1}
    out = set()
    for n in order:
        if n.op.name == "dyn_update" and n.inputs[0].id in owned:
            out.add(n.id)
        elif (n.op.name == "add" and n.inputs[0].id in owned and n.inputs[0].type == n.type
              and n.inputs[1] is not n.inputs[0]):
            out.add(n.id)  # a sum carried along (a gradient's): total += delta
        if n.id in out and uses.get(n.id) == 1:
            owned.add(n.id)
    return out


def overwritten_carries(node: Node) -> set[int]:
    """The carries (by index) of a loop whose initial value is never read: the body reads the
    carry only to set its row at the loop variable (axis 0), and the range is every row, 0 to
    the carry's length by 1 (a gradient of x read as x[t] over the whole of x). The initial
    value may then be any array of the type: its contents are all written before the loop ends."""
    if node.op.name != "for_loop":
        return set()
    body, inits, _ = parts(node)
    start, stop, step = (node.attr(a) for a in ("start", "stop", "step"))
    if start != 0 or step != 1:
        return set()
    uses: dict[int, int] = {}
    for n in topo_order(body.outputs):
        for i in n.inputs:
            uses[i.id] = uses.get(i.id, 0) + 1
    for o in body.outputs:
        uses[o.id] = uses.get(o.id, 0) + 1
    k, t = body.params[0], body.params[1]
    out = set()
    for j, (init, p, o) in enumerate(zip(inits, body.params[2:], body.outputs)):
        if (o.op.name == "dyn_update" and o.inputs[0] is p and uses.get(p.id) == 1 and o.attr("mode") == "set"
                and o.attr("axis") == 0 and (o.inputs[1] is t or o.inputs[1] is k) and init.type.rank >= 1
                and init.shape[0] == stop):
            out.add(j)
    return out


def written_in_place(body: Function) -> set[int]:
    """The carries (by index) a body writes into."""
    ids = in_place_updates(body)
    by_param = {p.id: j for j, p in enumerate(body.params[2:])}
    return {by_param[n.inputs[0].id] for n in topo_order(body.outputs) if n.id in ids and n.inputs[0].id in by_param}


# ---- one loop where a derivative made two ------------------------------------------------------------------
def merge_loops(outputs: list[Node]) -> list[Node]:
    """outputs with each loop whose carries another loop also computes (the forward loop a VJP
    adds, which also stacks values; a JVP's loop of carries and tangents; the same loop made
    twice) replaced by that loop's members: the forward work is done once. To a fixed point:
    a loop merged away may have been an input of the loop it was merged into."""
    for _ in range(8):
        merged = _merge_once(outputs)
        if merged is None:
            break
        outputs = merged
    return list(outputs)


def _merge_once(outputs: list[Node]) -> list[Node] | None:
    order = topo_order(outputs)
    groups: dict[tuple, Node] = {}
    for n in order:
        if n.op.name == "for_loop":
            groups.setdefault(group_of(n), n)
    if len(groups) < 2:
        return None
    reps = list(groups.values())
    mapping: dict[int, Node] = {}
    gone: set[tuple] = set()
    for ia, a in enumerate(reps):
        for ib, b in enumerate(reps):
            if a is b or group_of(b) in gone:
                continue
            smaller = len(a.inputs) < len(b.inputs) or a.attr("n_carries") < b.attr("n_carries")
            same = len(a.inputs) == len(b.inputs) and a.attr("n_carries") == b.attr("n_carries") and ia > ib
            if not (smaller or same):  # (of two equal loops, the later one goes)
                continue
            outs = _subsumed(a, b)
            if outs is not None:
                members = {m.attr("out"): m for m in order if m.op is a.op and group_of(m) == group_of(a)}
                for j, m in members.items():
                    mapping[m.id] = outs[j]
                gone.add(group_of(a))
                break
    if not mapping:
        return None
    return substitute(outputs, mapping)


def _subsumed(a: Node, b: Node) -> list[Node] | None:
    """b's members standing for a's carries (by a's `out`), if b's loop computes them the same way."""
    if any(a.attr(x) != b.attr(x) for x in ("start", "stop", "step", "reverse")):
        return None
    body_a, inits_a, caps_a = parts(a)
    body_b, inits_b, caps_b = parts(b)
    nca, ncb = len(inits_a), len(inits_b)
    if ncb < nca or any(x is not y for x, y in zip(inits_a, inits_b)):
        return None  # (the derivative loops keep the original carries first, in order)
    where = {c.id: i for i, c in enumerate(caps_b)}
    mapping = {p.id: q for p, q in zip(body_b.params[:2 + nca], body_a.params[:2 + nca])}
    for i, c in enumerate(caps_a):
        if c.id not in where:
            return None
        mapping[body_b.params[2 + ncb + where[c.id]].id] = body_a.params[2 + nca + i]
    try:
        again = substitute(list(body_b.outputs[:nca]), mapping)
    except Exception:  # noqa: BLE001 - a body that does not even type over a's parameters is not a's
        return None
    if any(x is not y for x, y in zip(again, body_a.outputs)):
        return None
    attrs = {k: v for k, v in b.attrs if k != "out"}
    return [apply("for_loop", *b.inputs, out=j, **attrs) for j in range(nca)]


def with_body(node: Node, body: Body) -> Node:
    """A loop node made again over another (an optimised) body."""
    attrs = {k: v for k, v in node.attrs}
    attrs["body"] = body
    return apply("for_loop", *node.inputs, span=node.span, **attrs)


# ---- written out, for the SymPy check's reference -----------------------------------------------------------
def unroll(outputs: list[Node], sizes: dict) -> list[Node]:
    """outputs with every loop written out iteration by iteration at these sizes (the body's
    outputs over the previous iteration's, k and t as literals), nested loops too: a graph
    of other primitives, whose meanings the check's reference differentiates."""
    from ..core.nodes import const
    from ..core.types import dim_subst

    while True:
        loop = next((n for n in topo_order(outputs) if n.op.name == "for_loop"), None)
        if loop is None:
            return list(outputs)
        carry = iterate(loop, list(loop.inputs), lambda d: int(dim_subst(d, sizes)), lambda i: const(i, I64),
                        substitute)
        members = [m for m in topo_order(outputs) if m.op is loop.op and group_of(m) == group_of(loop)]
        outputs = substitute(list(outputs), {m.id: carry[m.attr("out")] for m in members})


# ---- a carry's stack, its first row the initial value -------------------------------------------------------
def _first_infer(types, attrs):
    return types[0].with_(shape=(attrs["rows"], *types[0].shape), weak=False)


def _first_meaning(ctx, args, node):
    x = np.asarray(args[0], dtype=object)
    out = np.zeros(ctx.shape(node.shape), dtype=object)
    out[0] = x
    return out


STACK_FIRST = Helper("stack_first", '''def _stack_first(x, rows):
    """An array of `rows` rows for a loop to fill, row 0 x (the others written by the loop)."""
    x = xp.asarray(x)
    out = xp.empty((rows,) + x.shape, dtype=x.dtype)
    out[0] = x
    return out
''')

register(Primitive(
    "stack_first", "shape", _first_infer,
    lambda ctx, args, node: Expr(f"{ctx.helper('stack_first')}({args[0].text}, {ctx.dim(node.attr('rows'))})",
                                 PREC_POSTFIX),
    lambda ctx, node, ct, needs: [apply("dyn_index", ct, const(0, I64), axis=0)],
    lambda ctx, node, ts: None if ts[0] is None else apply("stack_first", ts[0], rows=node.attr("rows")),
    _first_meaning, helpers=(STACK_FIRST,), allocates=True,
    doc="[rows, ...] with row 0 x: a loop's stack of a carry (rows 1.. are the loop's to write; 0 in the meaning)",
    examples=((("f64[2]",), {"rows": 3}, {}), (("f64",), {"rows": 2}, {})),
))


# ---- checkpointed (-O2: passes/checkpoint.py) -----------------------------------------------------------------
def checkpoint_forward(fwd: Node) -> list[Node]:
    """-O2 (passes/checkpoint.py), for a VJP's forward loop `fwd` (which stacks values for every
    iteration): `ckpt_fwd` runs the body alone and keeps the carries every sqrt(n) iterations.
    Members: the final carries, then the saved carries as one opaque value (for ckpt_bwd)."""
    fbody, finits, fcaps = parts(fwd)
    nc = len(finits) - len(fwd.attr("stacks"))
    plain = Function(f"{fbody.name}_plain", fbody.params, fbody.outputs[:nc], fbody.span)
    attrs = dict(plain=Body(plain, fwd.attr("body").source), start=fwd.attr("start"), stop=fwd.attr("stop"),
                 step=fwd.attr("step"), n_carries=nc)
    return [apply("ckpt_fwd", *finits[:nc], *fcaps, span=fwd.span, out=j, **attrs) for j in range(nc + 1)]


def checkpoint_backward(fwd: Node, bwd: Node, saved: Node) -> list[Node]:
    """The backward loop `bwd` reading fwd's stacks as `ckpt_bwd`: each segment of sqrt(n)
    iterations run forward again from `saved` (ckpt_fwd's), stacking only its own iterations,
    just before going back over it. Members: bwd's carries."""
    fbody, finits, fcaps = parts(fwd)
    marks = fwd.attr("stacks")
    first, count = bwd.attr("stacked")
    bbody, binits, bcaps = parts(bwd)
    source = fwd.attr("body").source
    attrs = dict(fwd=Body(fbody, source), bwd=Body(bbody, source), start=fwd.attr("start"), stop=fwd.attr("stop"),
                 step=fwd.attr("step"), n_carries=len(finits) - len(marks), n_fcaps=len(fcaps),
                 n_bcarries=len(binits), stacks=marks, stacked=(first, count))
    inputs = [saved] + fcaps + binits + bcaps[:first] + bcaps[first + count:]
    return [apply("ckpt_bwd", *inputs, span=bwd.span, out=j, **attrs) for j in range(len(binits))]


def _ckpt_fwd_infer(types, attrs):
    j = attrs["out"]
    return types[j].strong() if j < attrs["n_carries"] else I64  # (the saved carries: an opaque value)


def _ckpt_bwd_infer(types, attrs):
    return types[1 + attrs["n_fcaps"] + attrs["out"]].strong()


_NOTE = "a pass makes it from a derivative's loops at -O2, after differentiation and the check"
register(Primitive(
    "ckpt_fwd", "subgraph", _ckpt_fwd_infer, None, None, None, None, differentiable=False, cost=Cost.COSTLY,
    write=write_ckpt_fwd,
    rule_shape="nondifferentiable", sympy_note=_NOTE,
    doc="-O2 (passes/checkpoint.py): a VJP's forward loop without its stacks, keeping the carries every sqrt(n) "
        "iterations; members: the final carries, then the saved carries (an opaque value only ckpt_bwd reads)",
))
register(Primitive(
    "ckpt_bwd", "subgraph", _ckpt_bwd_infer, None, None, None, None, differentiable=False, cost=Cost.COSTLY,
    write=write_ckpt_bwd,
    rule_shape="nondifferentiable", sympy_note=_NOTE,
    doc="-O2 (passes/checkpoint.py): a VJP's backward loop, each sqrt(n) segment run forward again from the "
        "saved carries (stacking only its own iterations) before going back over it",
))
