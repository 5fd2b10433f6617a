"""Shape primitives: reshape, broadcast_to, squeeze, expand_dims, static indexing,
concat, take, take_along_axis, and the scatters that are their transposes.

Every op here is linear, so VJPs are transposes: reshape <-> reshape,
broadcast_to <-> unbroadcast (a sum), index <-> index_grad (scatter into zeros),
take <-> take_grad (scatter-add). The scatters' own VJPs are the gathers, so
derivatives of derivatives work.
"""
from __future__ import annotations

import numpy as np

from ..core.diagnostics import UserError
from ..core.primitive import PREC_POSTFIX, Cost, Expr, Helper, Loop, Primitive, broadcast_axes, register
from ..core.types import (
    TensorType,
    broadcast_to_ok,
    dim_add,
    dim_prod,
    dim_sub,
    dim_text,
    shape_text,
)
from . import algebra as B
from . import axis_maps as AX
from .common import helper_call
from .rule_shapes import linear


def _obj(a):
    return np.asarray(a, dtype=object)


# ---- reshape ---------------------------------------------------------------------------------------
def _reshape_infer(types, attrs):
    t = types[0]
    shape = attrs["shape"]
    if dim_prod(t.shape) != dim_prod(shape):
        raise UserError(
            f"cannot reshape {t} ({dim_text(dim_prod(t.shape))} elements) to {shape_text(shape)} "
            f"({dim_text(dim_prod(shape))} elements)", arg="shape"
        )
    return t.with_(shape=shape)


def _reshape_emit(ctx, args, node):
    x = args[0].at(PREC_POSTFIX)
    return Expr(f"{x}.reshape({ctx.shape(node.shape)})", PREC_POSTFIX)


register(linear(
    "reshape", "shape", _reshape_infer, _reshape_emit,
    lambda ctx, node, ct, needs: [B.reshape(ct, node.inputs[0].shape)],
    lambda ctx, args, node: _obj(args[0]).reshape(ctx.shape(node.shape)),
    tangent=lambda ctx, node, ts: B.reshape(ts[0], node.shape),
    examples=((("f64[2, 3]",), {"shape": (3, 2)}, {}),),
    view=True, relabels=True, writes_shape=True, cost=Cost.FREE, axis_map=AX.reshape,
))


# ---- broadcast_to ------------------------------------------------------------------------------------
def _bcast_infer(types, attrs):
    t = types[0]
    shape = tuple(attrs["shape"])
    bad = next((d for d in shape if isinstance(d, int) and d < 0), None)
    if bad is not None:  # -1 ("infer this size") is reshape's, not broadcast_to's (nor NumPy's)
        raise UserError(f"a size of broadcast_to must not be negative, got {bad}", arg="shape")
    if not broadcast_to_ok(t.shape, shape):
        if t.rank > len(shape):
            raise UserError(f"cannot broadcast {t} to {shape_text(shape)}: it has more axes", arg="shape")
        axis = next(a for a in range(-1, -t.rank - 1, -1) if t.shape[a] not in (1, shape[a]))
        raise UserError(f"cannot broadcast {t} to {shape_text(shape)}: axis {axis} has size "
                        f"{dim_text(t.shape[axis])}, which is neither 1 nor {dim_text(shape[axis])}", arg="shape")
    return t.with_(shape=shape)


register(linear(
    "broadcast_to", "shape", _bcast_infer,
    lambda ctx, a, n: Expr(f"{ctx.xp}.broadcast_to({a[0].text}, {ctx.shape(n.shape)})", PREC_POSTFIX),
    lambda ctx, node, ct, needs: [B.unbroadcast(ct, node.inputs[0].type)],
    lambda ctx, args, node: np.broadcast_to(_obj(args[0]), ctx.shape(node.shape)).copy(),
    tangent=lambda ctx, node, ts: B.broadcast_to(ts[0], node.shape),
    examples=((("f64[3, 1]",), {"shape": (2, 3, 2)}, {}),),
    view=True, writes_shape=True, cost=Cost.FREE, axis_map=broadcast_axes,
))


# ---- squeeze / expand_dims ---------------------------------------------------------------------------
def _squeeze_infer(types, attrs):
    t = types[0]
    for a in attrs["axes"]:
        if t.shape[a] != 1:
            raise UserError(f"cannot squeeze axis {a} of {t}: its size is {dim_text(t.shape[a])}, not 1",
                            arg="axis")
    return t.with_(shape=tuple(d for i, d in enumerate(t.shape) if i not in attrs["axes"]))


def _axes_text(axes):
    return str(axes[0]) if len(axes) == 1 else str(tuple(axes))


register(linear(
    "squeeze", "shape", _squeeze_infer,
    lambda ctx, a, n: Expr(f"{ctx.xp}.squeeze({a[0].text}, {_axes_text(n.attr('axes'))})", PREC_POSTFIX),
    lambda ctx, node, ct, needs: [B.apply("expand_dims", ct, axes=node.attr("axes"))],
    lambda ctx, args, node: np.squeeze(_obj(args[0]), tuple(node.attr("axes"))),
    examples=((("f64[2, 1, 3]",), {"axes": (1,)}, {}),),
    view=True, relabels=True, cost=Cost.FREE, axis_map=AX.squeeze,
))


def _expand_infer(types, attrs):
    t = types[0]
    shape = list(t.shape)
    for a in attrs["axes"]:
        shape.insert(a, 1)
    return t.with_(shape=tuple(shape))


register(linear(
    "expand_dims", "shape", _expand_infer,
    lambda ctx, a, n: Expr(f"{ctx.xp}.expand_dims({a[0].text}, {_axes_text(n.attr('axes'))})", PREC_POSTFIX),
    lambda ctx, node, ct, needs: [B.apply("squeeze", ct, axes=node.attr("axes"))],
    lambda ctx, args, node: np.expand_dims(_obj(args[0]), tuple(node.attr("axes"))),
    examples=((("f64[2, 3]",), {"axes": (0, 2)}, {}),),
    view=True, relabels=True, cost=Cost.FREE, axis_map=AX.expand_dims,
))


# ---- static indexing ----------------------------------------------------------------------------------
# items: ("i", k) an integer, ("s", start, stop, step) a slice, ("n",) a new axis; one per
# output-producing position, `...` already expanded into full slices.
def slice_length(d, start, stop, step):
    """Length of range(start, stop, step) over an axis of size d; None if it cannot be known."""
    if isinstance(d, int) and all(isinstance(v, int) or v is None for v in (start, stop)):
        return len(range(*slice(start, stop, step).indices(d)))
    if step == -1 and start is None and stop is None:
        return d
    if step != 1:
        return None

    def bound(v, default):
        if v is None:
            return default
        if isinstance(v, int) and v < 0:
            return dim_add(d, v)
        return v

    return dim_sub(bound(stop, d), bound(start, 0))


def index_shape(t: TensorType, items) -> tuple:
    shape = []
    axis = 0
    for item in items:
        if item[0] == "n":
            shape.append(1)
            continue
        d = t.shape[axis]
        if item[0] == "i":
            k = item[1]
            if isinstance(d, int) and not -d <= k < d:
                raise UserError(f"index {k} is out of range for axis {axis} of {t} (size {d})")
        else:
            n = slice_length(d, *item[1:])
            if n is None:
                raise UserError(
                    f"the slice on axis {axis} of {t} has a size that depends on {dim_text(d)}; "
                    "use bounds from the start (`k:`), from the end (`:-k`), or a literal size"
                )
            shape.append(n)
        axis += 1
    shape.extend(t.shape[axis:])
    return tuple(shape)


def _index_infer(types, attrs):
    return types[0].with_(shape=index_shape(types[0], attrs["items"]))


def _index_requires(node) -> list:
    """A constant index on a symbolic axis is in range only for large enough sizes (literal
    axes are checked by index_shape when compiling); so is a constant slice bound: `x[:3]`
    has size 3 only where N >= 3 (NumPy would clamp the slice and silently give fewer)."""
    out, axis = [], 0
    for item in node.attr("items"):
        if item[0] == "n":
            continue
        d = node.inputs[0].shape[axis]
        if item[0] == "i" and not isinstance(d, int):
            k = item[1]
            out.append((dim_add(d, -(k + 1)) if k >= 0 else dim_add(d, k),
                        f"index {k} is out of range for axis {axis} of size {dim_text(d)}"))
        elif item[0] == "s" and not isinstance(d, int) and isinstance(slice_length(d, *item[1:]), int):
            # (a size of N - k is checked as a size: it must not be negative)
            for v in item[1:3]:
                if isinstance(v, int) and v != 0:
                    out.append((dim_add(d, -abs(v)), f"slice bound {v} is out of range for axis {axis} of "
                                                     f"size {dim_text(d)}"))
        axis += 1
    return out


def index_text(ctx, items) -> str:
    parts = []
    for item in items:
        if item[0] == "i":
            parts.append(str(item[1]))
        elif item[0] == "n":
            parts.append("None")
        else:
            _, start, stop, step = item
            text = ":".join(ctx.dim(v) if v is not None else "" for v in (start, stop))
            if step != 1:
                text += f":{step}"
            parts.append(text)
    return ", ".join(parts) if parts else "()"


def _index_emit(ctx, args, node):
    return Expr(f"{args[0].at(PREC_POSTFIX)}[{index_text(ctx, node.attr('items'))}]", PREC_POSTFIX)


def index_tuple_text(ctx, items) -> str:
    """The index as a Python tuple of ints, slices and None (for the scatter helper)."""
    parts = []
    for item in items:
        if item[0] == "i":
            parts.append(str(item[1]))
        elif item[0] == "n":
            parts.append("None")
        else:
            _, start, stop, step = item
            vals = [ctx.dim(v) if v is not None else "None" for v in (start, stop)] + [str(step)]
            parts.append(f"slice({', '.join(vals)})")
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _sym_index(ctx, items):
    out = []
    for item in items:
        if item[0] == "i":
            out.append(item[1])
        elif item[0] == "n":
            out.append(None)
        else:
            _, start, stop, step = item
            c = [ctx.dim(v) if v is not None else None for v in (start, stop)]
            out.append(slice(c[0], c[1], step))
    return tuple(out)


def _index_sympy(ctx, args, node):
    return np.array(_obj(args[0])[_sym_index(ctx, node.attr("items"))], dtype=object)


register(linear(
    "index", "shape", _index_infer, _index_emit,
    lambda ctx, node, ct, needs: [B.apply("index_grad", ct, items=node.attr("items"), shape=node.inputs[0].shape)],
    _index_sympy, doc="basic indexing with constant ints, slices and None", cost=Cost.FREE,
    examples=((("f64[3, 4]",), {"items": (("s", 1, 3, 1), ("s", None, None, -2))}, {}),
              (("f64[3, 4]",), {"items": (("i", 1), ("n",))}, {})),
    view=True, requires=_index_requires, axis_map=AX.index,
))


def _index_grad_infer(types, attrs):
    t = types[0]
    target = TensorType(t.dtype, attrs["shape"])
    expect = index_shape(target, attrs["items"])
    if expect != t.shape:  # pragma: no cover - built only by the VJP of index
        raise UserError(f"index_grad: cotangent {t} does not fit {shape_text(expect)}")
    return target.with_(weak=t.weak)


def _index_grad_emit(ctx, args, node):
    name = ctx.helper("index_grad")
    return Expr(f"{name}({args[0].text}, {ctx.shape(node.shape)}, "
                f"{index_tuple_text(ctx, node.attr('items'))})", PREC_POSTFIX)


def _index_grad_sympy(ctx, args, node):
    out = np.zeros(ctx.shape(node.shape), dtype=object)
    out[_sym_index(ctx, node.attr("items"))] = _obj(args[0])
    return out


INDEX_GRAD = Helper("index_grad", '''def _index_grad(g, shape, index):
    """Zeros of `shape` with g written at `index` (the transpose of basic indexing)."""
    out = xp.zeros(shape, dtype=g.dtype)
    out[index] = g
    return out
''')

register(linear(
    "index_grad", "shape", _index_grad_infer, _index_grad_emit,
    lambda ctx, node, ct, needs: [B.apply("index", ct, items=node.attr("items"))],
    _index_grad_sympy, doc="zeros of `shape` with the indexed region set: the transpose of index",
    allocates=True, writes_shape=True, helpers=(INDEX_GRAD,),
    examples=((("f64[2, 2]",), {"items": (("s", 1, 3, 1), ("s", None, None, -2)), "shape": (3, 4)}, {}),),
))


# index_grads: several index_grad of one shape summed into one array (simplification.py makes it
# from their sum): x read as x[1:] and x[:-1] gets one zeros array with each cotangent added into
# a view of it, not one padded array per slice and the adds.
def _index_grads_infer(types, attrs):
    parts = attrs["parts"]
    if not len(parts) == len(attrs["signs"]) == len(types) or not types:  # pragma: no cover - built only by simplification
        raise UserError(f"index_grads: {len(types)} cotangents for {len(parts)} indices")
    target = TensorType(types[0].dtype, attrs["shape"])
    for k, (t, items) in enumerate(zip(types, parts)):
        expect = index_shape(target, items)
        if expect != t.shape or t.dtype != types[0].dtype:  # pragma: no cover - built only by simplification
            raise UserError(f"index_grads: cotangent {t} does not fit {types[0].dtype}{shape_text(expect)}", arg=k)
    return target.with_(weak=all(t.weak for t in types))


def _index_grads_emit(ctx, args, node):
    parts = ", ".join(f"({index_tuple_text(ctx, items)}, {a.text}{'' if sign > 0 else ', -1'})"
                      for a, items, sign in zip(args, node.attr("parts"), node.attr("signs")))
    return Expr(f"{ctx.helper('index_grads')}({ctx.shape(node.shape)}, {ctx.dtype(node.dtype)}, {parts})",
                PREC_POSTFIX)


def _index_grads_vjp(ctx, node, ct, needs):
    out = []
    for items, sign, need in zip(node.attr("parts"), node.attr("signs"), needs):
        g = B.apply("index", ct, items=items) if need else None
        out.append(B.apply("neg", g) if g is not None and sign < 0 else g)
    return out


def _index_grads_jvp(ctx, node, ts):
    keep = [k for k, t in enumerate(ts) if t is not None]
    if not keep:
        return None
    return B.apply("index_grads", *[ts[k] for k in keep], parts=tuple(node.attr("parts")[k] for k in keep),
                   signs=tuple(node.attr("signs")[k] for k in keep), shape=node.shape)


def _index_grads_sympy(ctx, args, node):
    out = np.zeros(ctx.shape(node.shape), dtype=object)
    for a, items, sign in zip(args, node.attr("parts"), node.attr("signs")):
        at = _sym_index(ctx, items)
        out[at] = out[at] + sign * _obj(a)
    return out


INDEX_GRADS = Helper("index_grads", '''def _index_grads(shape, dtype, *parts):
    """Zeros of `shape` with each g of the (index, g) parts added at its index ((index, g, -1):
    subtracted): one array for the cotangents of several slices of one value, each added into
    a view of it."""
    out = xp.zeros(shape, dtype=dtype)
    for index, g, *sign in parts:
        if sign:
            out[index] -= g
        else:
            out[index] += g
    return out
''')

register(linear(
    "index_grads", "shape", _index_grads_infer, _index_grads_emit, _index_grads_vjp, _index_grads_sympy,
    tangent=_index_grads_jvp, coerce=lambda args, attrs: B.common_dtype(args),
    doc="zeros of `shape` with each operand added at its index (or subtracted: `signs`): index_grads summed "
        "in one array",
    allocates=True, writes_shape=True, helpers=(INDEX_GRADS,),
    examples=((("f64[3]", "f64[3]"), {"parts": ((("s", 1, None, 1),), (("s", None, -1, 1),)), "signs": (1, -1), "shape": (4,)}, {}),
              (("f64[2, 2]", "f64[4]"), {"parts": ((("s", 1, 3, 1), ("s", None, None, -2)), (("i", 0),)),
                                         "signs": (1, 1), "shape": (3, 4)}, {})),
))



# index_grads_onto: a full-size value plus the cotangents of slices (simplification.py makes it
# from `a + index_grads(...)`): each cotangent added into a view of a, written over a where a is
# a temporary read only here (Loop.into), else into a copy of it; no zeros array, no add pass.
# x - y + (x[1:] - x[:-1]) ** 2's gradient: g = x - y, g[1:] += d, g[:-1] -= d (issue 18, W13).
def _onto_infer(types, attrs):
    base, parts = types[0], attrs["parts"]
    if not len(parts) == len(attrs["signs"]) == len(types) - 1:  # pragma: no cover - built only by simplification
        raise UserError(f"index_grads_onto: {len(types) - 1} cotangents for {len(parts)} indices")
    for k, (t, items) in enumerate(zip(types[1:], parts)):
        expect = index_shape(base, items)
        if expect != t.shape or t.dtype != base.dtype:  # pragma: no cover - built only by simplification
            raise UserError(f"index_grads_onto: cotangent {t} does not fit {base.dtype}{shape_text(expect)}",
                            arg=k + 1)
    return base.with_(weak=all(t.weak for t in types))


def _onto_emit(ctx, args, node):
    parts = "".join(f", ({index_tuple_text(ctx, items)}, {a.text}{'' if sign > 0 else ', -1'})"
                    for a, items, sign in zip(args[1:], node.attr("parts"), node.attr("signs")))
    inplace = ", inplace=True" if len(args) > len(node.inputs) else ""  # (Loop.into: over a dead base)
    return Expr(f"{ctx.helper('index_grads_onto')}({args[0].text}{parts}{inplace})", PREC_POSTFIX)


def _onto_vjp(ctx, node, ct, needs):
    out = [ct if needs[0] else None]
    for items, sign, need in zip(node.attr("parts"), node.attr("signs"), needs[1:]):
        g = B.apply("index", ct, items=items) if need else None
        out.append(B.apply("neg", g) if g is not None and sign < 0 else g)
    return out


def _onto_jvp(ctx, node, ts):
    keep = [k for k, t in enumerate(ts[1:]) if t is not None]
    parts = tuple(node.attr("parts")[k] for k in keep)
    signs = tuple(node.attr("signs")[k] for k in keep)
    cts = [ts[1 + k] for k in keep]
    if ts[0] is None:
        return B.apply("index_grads", *cts, parts=parts, signs=signs, shape=node.shape) if keep else None
    return B.apply("index_grads_onto", ts[0], *cts, parts=parts, signs=signs) if keep else ts[0]


def _onto_sympy(ctx, args, node):
    out = _obj(args[0]).copy()
    for a, items, sign in zip(args[1:], node.attr("parts"), node.attr("signs")):
        at = _sym_index(ctx, items)
        out[at] = out[at] + sign * _obj(a)
    return out


INDEX_GRADS_ONTO = Helper("index_grads_onto", '''def _index_grads_onto(base, *parts, inplace=False):
    """base (a copy, or base itself if inplace) with each g of the (index, g) parts added at its
    index ((index, g, -1): subtracted), each into a view."""
    out = base if inplace else base.copy()
    for index, g, *sign in parts:
        if sign:
            out[index] -= g
        else:
            out[index] += g
    return out
''')

register(Primitive(
    "index_grads_onto", "shape", _onto_infer, _onto_emit, _onto_vjp, _onto_jvp, _onto_sympy,
    coerce=lambda args, attrs: B.common_dtype(args),
    doc="internal: base with each further operand added at its index (or subtracted: `signs`), "
        "over base where it is a temporary",
    allocates=True, loop=Loop(into=True), helpers=(INDEX_GRADS_ONTO,),
    examples=((("f64[4]", "f64[3]", "f64[3]"), {"parts": ((("s", 1, None, 1),), (("s", None, -1, 1),)), "signs": (1, -1)}, {}),
              (("f64[3, 4]", "f64[2, 2]", "f64[4]"), {"parts": ((("s", 1, 3, 1), ("s", None, None, -2)), (("i", 0),)),
                                                       "signs": (1, 1)}, {})),
))

# ---- concat --------------------------------------------------------------------------------------------
def _concat_infer(types, attrs):
    axis = attrs["axis"]
    first = types[0]
    total = 0
    for i, t in enumerate(types):
        if t.rank != first.rank:
            raise UserError(f"`concat` operands must have one rank: {first} and {t}", arg=i)
        for a in range(t.rank):
            if a != axis and t.shape[a] != first.shape[a]:
                raise UserError(
                    f"`concat` along axis {axis}: {first} and {t} differ on axis {a} "
                    f"({dim_text(first.shape[a])} vs {dim_text(t.shape[a])})", arg=i)
        total = dim_add(total, t.shape[axis])
    shape = list(first.shape)
    shape[axis] = total
    return TensorType(first.dtype, tuple(shape), all(t.weak for t in types))


def _concat_vjp(ctx, node, ct, needs):
    axis = node.attr("axis")
    out = []
    offset = 0
    for i, x in enumerate(node.inputs):
        end = dim_add(offset, x.shape[axis])
        if needs[i]:
            items = (("s", None, None, 1),) * axis + (("s", offset or None, end, 1),)
            out.append(B.apply("index", ct, items=items))
        else:
            out.append(None)
        offset = end
    return out


def _concat_emit(ctx, args, node):
    items = ", ".join(a.text for a in args)
    return Expr(f"{ctx.xp}.concatenate(({items},), axis={node.attr('axis')})", PREC_POSTFIX)


def _concat_jvp(ctx, node, ts):
    parts = [t if t is not None else B.zeros_like(x) for t, x in zip(ts, node.inputs)]
    return B.apply("concat", *parts, axis=node.attr("axis"))


register(linear(
    "concat", "shape", _concat_infer, _concat_emit, _concat_vjp,
    lambda ctx, args, node: np.concatenate([_obj(a) for a in args], axis=node.attr("axis")), tangent=_concat_jvp,
    coerce=lambda args, attrs: B.common_dtype(args),
    examples=((("f64[2, 3]", "f64[1, 3]"), {"axis": 0}, {}), (("f64[2]", "f64[2]", "f64[1]"), {"axis": 0}, {})),
    axis_map=AX.concat,
))


# ---- take / take_along_axis (integer-array gathers) ----------------------------------------------------
def _int_index(t: TensorType, what: str, arg: int):
    if t.dtype.kind != "i":
        raise UserError(f"`{what}` needs integer indices, got {t}", arg=arg)


def _take_infer(types, attrs):
    x, idx = types
    _int_index(idx, "take", 1)
    axis = attrs["axis"]
    return TensorType(x.dtype, x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.weak)


def _take_vjp(ctx, node, ct, needs):
    x, idx = node.inputs
    return [B.apply("take_grad", ct, idx, axis=node.attr("axis"), shape=x.shape), None]


def _take_sympy(ctx, args, node):
    return np.take(_obj(args[0]), np.asarray(args[1], dtype=np.int64), axis=node.attr("axis"))


register(linear(
    "take", "shape", _take_infer,
    lambda ctx, a, n: Expr(f"{ctx.xp}.take({a[0].text}, {a[1].text}, axis={n.attr('axis')})", PREC_POSTFIX),
    _take_vjp, _take_sympy, doc="numpy.take; negative indices count from the end",
    examples=((("f64[4, 3]", "i64[2, 2]"), {"axis": 0}, {1: "int:0:4"}),), axis_map=AX.take,
))


def _take_grad_infer(types, attrs):
    return TensorType(types[0].dtype, tuple(attrs["shape"]), types[0].weak)


def _take_grad_sympy(ctx, args, node):
    out = np.zeros(ctx.shape(node.shape), dtype=object)
    g, idx, axis = _obj(args[0]), np.asarray(args[1], dtype=np.int64), node.attr("axis")
    for pos in np.ndindex(g.shape):
        k = idx[pos[axis:axis + idx.ndim]]
        out[pos[:axis] + (k,) + pos[axis + idx.ndim:]] += g[pos]
    return out


TAKE_GRAD = Helper("take_grad", '''def _take_grad(g, idx, axis, shape):
    """Zeros of `shape` with g added at idx along axis; repeated indices accumulate."""
    out = xp.zeros(shape, dtype=g.dtype)
    xp.add.at(out, (slice(None),) * axis + (idx,), g)
    return out
''')

register(linear(
    "take_grad", "shape", _take_grad_infer, helper_call("take_grad", "axis", "shape"),
    lambda ctx, node, ct, needs: [B.apply("take", ct, node.inputs[1], axis=node.attr("axis")), None],
    _take_grad_sympy, doc="scatter-add: the transpose of take (repeated indices accumulate)",
    allocates=True, writes_shape=True, helpers=(TAKE_GRAD,),
    examples=((("f64[3, 2]", "i64[3]"), {"axis": 0, "shape": (2, 2)}, {1: "int:0:2"}),),
))


def _tala_infer(types, attrs):
    x, idx = types
    _int_index(idx, "take_along_axis", 1)
    axis = attrs["axis"]
    if idx.rank != x.rank:
        raise UserError(f"`take_along_axis` needs indices of the same rank as the values: {x} and {idx}", arg=1)
    for a in range(x.rank):
        if a != axis and idx.shape[a] not in (1, x.shape[a]):
            raise UserError(f"`take_along_axis`: indices {idx} do not fit values {x} on axis {a}", arg=1)
    shape = tuple(idx.shape[a] if a == axis else x.shape[a] for a in range(x.rank))
    return TensorType(x.dtype, shape, x.weak)


def _tala_sympy(ctx, args, node):
    return np.take_along_axis(_obj(args[0]), np.asarray(args[1], dtype=np.int64), axis=node.attr("axis"))


register(linear(
    "take_along_axis", "shape", _tala_infer,
    lambda ctx, a, n: Expr(f"{ctx.xp}.take_along_axis({a[0].text}, {a[1].text}, axis={n.attr('axis')})",
                           PREC_POSTFIX),
    lambda ctx, node, ct, needs: [B.apply("take_along_axis_grad", ct, node.inputs[1], axis=node.attr("axis"),
                                          shape=node.inputs[0].shape), None],
    _tala_sympy,
    examples=((("f64[3, 4]", "i64[3, 2]"), {"axis": 1}, {1: "int:0:4"}),), axis_map=AX.take_along_axis,
))


def _tala_grad_sympy(ctx, args, node):
    out = np.zeros(ctx.shape(node.shape), dtype=object)
    g, axis = _obj(args[0]), node.attr("axis")
    idx = np.broadcast_to(np.asarray(args[1], dtype=np.int64), g.shape)
    for pos in np.ndindex(g.shape):
        target = list(pos)
        target[axis] = idx[pos]
        out[tuple(target)] += g[pos]
    return out


TAKE_ALONG_AXIS_GRAD = Helper("take_along_axis_grad", '''def _take_along_axis_grad(g, idx, axis, shape):
    """The transpose of take_along_axis: g added at idx along axis."""
    out = xp.zeros(shape, dtype=g.dtype)
    idx = xp.broadcast_to(idx, g.shape)
    index = tuple(
        idx if a == axis else xp.arange(n).reshape([n if b == a else 1 for b in range(g.ndim)])
        for a, n in enumerate(g.shape)
    )
    xp.add.at(out, index, g)
    return out
''')

register(linear(
    "take_along_axis_grad", "shape", _take_grad_infer, helper_call("take_along_axis_grad", "axis", "shape"),
    lambda ctx, node, ct, needs: [B.apply("take_along_axis", ct, node.inputs[1], axis=node.attr("axis")), None],
    _tala_grad_sympy, doc="scatter-add: the transpose of take_along_axis",
    allocates=True, writes_shape=True, helpers=(TAKE_ALONG_AXIS_GRAD,),
    examples=((("f64[3, 2]", "i64[3, 2]"), {"axis": 1, "shape": (3, 4)}, {1: "int:0:4"}),),
))
