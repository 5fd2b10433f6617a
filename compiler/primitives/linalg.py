"""Linear algebra: matmul (`@`), einsum, transpose, diagonal.

All are linear in each operand, so each VJP is the transposed contraction and
each JVP is the sum over operands of the op with one operand replaced by its
tangent.
"""
from __future__ import annotations

import re
import string

import numpy as np

from ..core.diagnostics import UserError
from ..core.primitive import PREC_MUL, PREC_POSTFIX, Cost, Expr, Helper, register
from ..core.types import (
    BroadcastError,
    TensorType,
    broadcast_shapes,
    dim_prod,
    dim_text,
    shape_text,
)
from . import algebra as B
from . import axis_maps as AX
from .common import infix, no_bool
from .rule_shapes import bilinear, linear


def _sympy():
    import sympy

    return sympy


# ---- matmul ----------------------------------------------------------------------------------------
def _matmul_infer(types, attrs):
    a, b = types
    no_bool(types, "@")
    for i, t in enumerate(types):
        if t.rank == 0:
            raise UserError(f"`@` needs operands of rank 1 or more, got the scalar {t}; use `*` for scalars", arg=i)
    sa = a.shape if a.rank > 1 else (1,) + a.shape
    sb = b.shape if b.rank > 1 else b.shape + (1,)
    if sa[-1] != sb[-2]:
        raise UserError(
            f"cannot multiply {a} by {b}: the contracted dimensions differ "
            f"({dim_text(sa[-1])} vs {dim_text(sb[-2])})"
        )
    try:
        batch = broadcast_shapes(sa[:-2], sb[:-2])
    except BroadcastError:
        raise UserError(
            f"cannot multiply {a} by {b}: batch dimensions {shape_text(sa[:-2])} and "
            f"{shape_text(sb[:-2])} do not broadcast"
        ) from None
    shape = batch + ((sa[-2],) if a.rank > 1 else ()) + ((sb[-1],) if b.rank > 1 else ())
    return TensorType(a.dtype, shape, a.weak and b.weak)


def _swap(x):
    """Transpose of the last two axes."""
    r = x.type.rank
    return B.apply("transpose", x, perm=tuple(range(r - 2)) + (r - 1, r - 2))


def _matmul_vjp(ctx, node, ct, needs):
    a, b = node.inputs
    da = db = None
    if a.type.rank == 1 and b.type.rank == 1:  # dot product: ct is a scalar
        return [B.mul(ct, b) if needs[0] else None, B.mul(ct, a) if needs[1] else None]
    if a.type.rank == 1 and b.type.rank == 2:  # ct[m]
        da = B.apply("matmul", b, ct) if needs[0] else None
        db = B.mul(B.reshape(a, a.shape + (1,)), ct) if needs[1] else None
        return [da, db]
    if a.type.rank == 2 and b.type.rank == 1:  # ct[n]
        da = B.mul(B.reshape(ct, ct.shape + (1,)), b) if needs[0] else None
        db = B.apply("matmul", ct, a) if needs[1] else None
        return [da, db]
    if a.type.rank >= 3 and b.type.rank == 2 and needs[1]:  # a stack times one matrix: b's gradient is
        # one GEMM over the stack's rows (a^T ct summed over the batch as T GEMMs and a sum is slower)
        rows = dim_prod(a.shape[:-1])
        db = B.apply("matmul", _swap(B.reshape(a, (rows, a.shape[-1]))), B.reshape(ct, (rows, ct.shape[-1])))
        da = B.apply("matmul", ct, _swap(b)) if needs[0] else None
        return [da, db]
    # general (batched) case: lift 1-D operands to 2-D, contract, sum broadcast batch axes
    a2 = a if a.type.rank > 1 else B.reshape(a, (1,) + a.shape)
    b2 = b if b.type.rank > 1 else B.reshape(b, b.shape + (1,))
    out2 = ct.shape
    if a.type.rank == 1:
        out2 = out2[:-1] + (1,) + out2[-1:]
    if b.type.rank == 1:
        out2 = out2 + (1,)
    ct2 = B.reshape(ct, out2)
    if needs[0]:
        da = B.reshape(B.unbroadcast(B.apply("matmul", ct2, _swap(b2)), a2.type), a.shape)
    if needs[1]:
        db = B.reshape(B.unbroadcast(B.apply("matmul", _swap(a2), ct2), b2.type), b.shape)
    return [da, db]


def _matmul_product(node, i, t):
    a, b = node.inputs
    return B.apply("matmul", t, b) if i == 0 else B.apply("matmul", a, t)


def _matmul_sympy(ctx, args, node):
    return np.matmul(np.asarray(args[0], dtype=object), np.asarray(args[1], dtype=object))


def _matmul_emit(ctx, args, node):
    """a @ b; a stack of matrices times one matrix as one GEMM over the stack's rows (NumPy runs
    a stack as one GEMM per matrix: x[100, 64, 128] @ w[128, 128] 0.9 ms, as one 0.5 ms)."""
    a, b = node.inputs
    if len(args) == 3:  # (out_arg: into a dead array of the result's shape, no fresh one)
        return Expr(f"{ctx.xp}.matmul({args[0].text}, {args[1].text}, out={args[2].text})", PREC_POSTFIX)
    if a.type.rank >= 3 and b.type.rank == 2:
        k = ctx.dim(a.shape[-1])
        return Expr(f"({args[0].at(PREC_POSTFIX)}.reshape(-1, {k}) @ {args[1].at(PREC_MUL + 1)})"
                    f".reshape({ctx.shape(node.shape)})", PREC_POSTFIX)
    return _INFIX(ctx, args, node)


_INFIX = infix("@", PREC_MUL)

register(bilinear(
    "matmul", "linalg", _matmul_infer, _matmul_emit, _matmul_product, _matmul_vjp, _matmul_sympy,
    coerce=lambda args, attrs: B.common_dtype(args), doc="numpy.matmul: 1-D operands, batch broadcasting",
    cost=Cost.CONTRACTION, out_arg=lambda node: all(t.type.rank == 2 for t in (node, *node.inputs)),
    examples=((("f64[2, 3]", "f64[3, 2]"), {}, {}), (("f64[3]", "f64[3, 2]"), {}, {}),
              (("f64[2, 3]", "f64[3]"), {}, {}), (("f64[3]", "f64[3]"), {}, {}),
              (("f64[2, 1, 2, 3]", "f64[2, 3, 2]"), {}, {})), axis_map=AX.matmul,
))


# ---- transpose -------------------------------------------------------------------------------------
def _transpose_infer(types, attrs):
    t = types[0]
    perm = attrs["perm"]
    if sorted(perm) != list(range(t.rank)):
        raise UserError(f"axes {list(perm)} are not a permutation of the {t.rank} axes of {t}", arg="axes")
    return t.with_(shape=tuple(t.shape[p] for p in perm))


def _transpose_emit(ctx, args, node):
    perm = node.attr("perm")
    x = args[0].at(PREC_POSTFIX)
    if list(perm) == list(range(len(perm)))[::-1]:
        return Expr(f"{x}.T", PREC_POSTFIX)
    return Expr(f"{x}.transpose({', '.join(map(str, perm))})", PREC_POSTFIX)


def _inverse(perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


register(linear(
    "transpose", "linalg", _transpose_infer, _transpose_emit,
    lambda ctx, node, ct, needs: [B.apply("transpose", ct, perm=_inverse(node.attr("perm")))],
    lambda ctx, args, node: np.transpose(np.asarray(args[0], dtype=object), node.attr("perm")),
    examples=((("f64[2, 3, 2]",), {"perm": (1, 2, 0)}, {}),),
    view=True, relabels=True, cost=Cost.FREE, axis_map=AX.transpose,
))


# ---- diagonal -----------------------------------------------------------------------------------------
def _diag_len(t: TensorType):
    n, m = t.shape[0], t.shape[1]
    if n == m:
        return n
    if isinstance(n, int) and isinstance(m, int):
        return min(n, m)
    raise UserError(f"the diagonal of {t} has an unknown length: give both axes one size or literal sizes")


def _diagonal_infer(types, attrs):
    t = types[0]
    if t.rank < 2:
        raise UserError(f"`diagonal` needs a value of rank 2 or more, got {t}", arg=0)
    return t.with_(shape=t.shape[2:] + (_diag_len(t),))


def _diagonal_vjp(ctx, node, ct, needs):
    x = node.inputs[0]
    n, m = x.shape[0], x.shape[1]
    eye = B.apply("eye", n=n, m=m, dtype=x.dtype)
    spec = "...i,ij->ij..." if n == _diag_len(x.type) else "...j,ij->ij..."
    return [B.apply("einsum", ct, eye, spec=spec)]


register(linear(
    "diagonal", "linalg", _diagonal_infer, lambda ctx, a, n: Expr(f"{ctx.xp}.diagonal({a[0].text})", PREC_POSTFIX),
    _diagonal_vjp, lambda ctx, args, node: np.diagonal(np.asarray(args[0], dtype=object)).copy(),
    doc="numpy.diagonal(x): axes 0 and 1, the diagonal last",
    examples=((("f64[2, 3]",), {}, {}), (("f64[3, 2, 2]",), {}, {})),
    view=True, cost=Cost.FREE, axis_map=AX.diagonal,
))


# ---- einsum -------------------------------------------------------------------------------------------
_SPEC_OK = re.compile(r"^[A-Za-z,.\->]*$")


def parse_spec(spec: str, n_operands: int):
    """Validate an einsum spec -> (list of operand subscripts, output subscripts, explicit).

    Subscripts are strings of letters with at most one '.' standing for `...`.
    """
    if not _SPEC_OK.match(spec):
        bad = next(c for c in spec if not re.match(r"[A-Za-z,.\->]", c))
        raise UserError(f"einsum spec has the character {bad!r}; use letters, `,`, `->` and `...`", arg=0)
    if spec.count("->") > 1:
        raise UserError("einsum spec has more than one `->`", arg=0)
    lhs, arrow, rhs = spec.partition("->")
    if "-" in lhs.replace("->", "") or ">" in lhs or "-" in rhs or ">" in rhs:
        raise UserError("einsum spec: `-` and `>` may only appear together as `->`", arg=0)
    ins = lhs.split(",")
    if len(ins) != n_operands:
        raise UserError(f"einsum spec names {len(ins)} operand(s) but {n_operands} were given", arg=0)

    def compact(s: str, where: str) -> str:
        if s.count("...") > 1 or s.replace("...", "").count(".") or (s.count("...") == 1 and s.count(".") != 3):
            raise UserError(f"einsum spec: bad `...` in {where} {s!r}", arg=0)
        return s.replace("...", ".")

    subs = [compact(s, "operand") for s in ins]
    if arrow:
        out = compact(rhs, "output")
        if len(set(out)) != len(out):
            raise UserError(f"einsum spec: output {rhs!r} repeats a subscript", arg=0)
        for c in out:
            if c != "." and not any(c in s for s in subs):
                raise UserError(f"einsum spec: output subscript {c!r} appears in no operand", arg=0)
        if "." in out and not any("." in s for s in subs):
            raise UserError("einsum spec: output has `...` but no operand does", arg=0)
    else:
        letters = "".join(subs).replace(".", "")
        once = sorted(c for c in set(letters) if letters.count(c) == 1)
        out = ("." if any("." in s for s in subs) else "") + "".join(once)
    return subs, out, bool(arrow)


def full_spec(subs, out) -> str:
    return ",".join(s.replace(".", "...") for s in subs) + "->" + out.replace(".", "...")


def _einsum_sizes(subs, types):
    sizes: dict[str, object] = {}
    first: dict[str, int] = {}  # the operand that gave each subscript its size
    ell_shapes = []
    for i, (s, t) in enumerate(zip(subs, types)):
        letters = s.replace(".", "")
        if "." in s:
            if len(letters) > t.rank:
                raise UserError(f"einsum operand {i + 1} has rank {t.rank} but {s.replace('.', '...')!r} "
                                f"names {len(letters)} axes", arg=i + 1)
            k = s.index(".")
            n_ell = t.rank - len(letters)
            ell_shapes.append(t.shape[k:k + n_ell])
            dims = t.shape[:k] + t.shape[k + n_ell:]
        else:
            if len(letters) != t.rank:
                raise UserError(f"einsum operand {i + 1} has rank {t.rank} but {s!r} names {len(letters)} axes",
                                arg=i + 1)
            dims = t.shape
        for c, d in zip(letters, dims):
            if c in sizes and sizes[c] != d and 1 not in (sizes[c], d):
                raise UserError(f"einsum subscript {c!r} has size {dim_text(sizes[c])} in operand "
                                f"{first[c] + 1} and {dim_text(d)} in operand {i + 1}", arg=i + 1)
            if sizes.get(c, 1) == 1:  # size 1 broadcasts, as in numpy.einsum
                sizes[c] = d
                first[c] = i
    try:
        ell = broadcast_shapes(*ell_shapes) if ell_shapes else ()
    except BroadcastError as e:
        raise UserError(f"einsum: the `...` dimensions do not broadcast: {e.message}") from None
    return sizes, ell


def _einsum_infer(types, attrs):
    for i, t in enumerate(types):
        if t.dtype.kind == "b":
            raise UserError(f"einsum operand {i + 1} is bool; convert it first", arg=i + 1)
    subs, out, _ = parse_spec(attrs["spec"], len(types))
    sizes, ell = _einsum_sizes(subs, types)
    shape = []
    for c in out:
        shape.extend(ell if c == "." else (sizes[c],))
    return TensorType(types[0].dtype, tuple(shape), all(t.weak for t in types))


def _einsum_axes(node) -> tuple:
    """By the spec's letters: a letter of the output runs along its axis, a letter summed away is
    one label for every operand that has it; a letter twice in one operand (a diagonal) mixes;
    `...` axes broadcast from the right into the output's `...`."""
    subs, out, _ = parse_spec(node.attr("spec"), len(node.inputs))
    ell_out = node.type.rank - len(out.replace(".", ""))
    start = out.index(".") if "." in out else None
    position, k = {}, 0
    for c in out:
        if c == ".":
            k += ell_out
        else:
            position[c] = k
            k += 1
    labels = {c: -1 - n for n, c in enumerate(sorted(set("".join(subs)) - set(out) - {"."}))}
    maps = []
    for s, x in zip(subs, node.inputs):
        n_ell = x.type.rank - len(s.replace(".", ""))
        entry = []
        for c in s:
            if c == ".":
                entry += [None if start is None else start + ell_out - n_ell + j for j in range(n_ell)]
            elif s.count(c) > 1:
                entry.append(None)
            else:
                entry.append(position.get(c, labels.get(c)))
        maps.append(tuple(entry))
    return tuple(maps)


def _einsum_coerce(args, attrs):
    return B.common_dtype(args)


def _matmul_form(node):
    """(a_swapped, b_swapped, result_swapped) when the einsum is a (batched) matrix product that
    `@` computes on views: two float operands, each its batch letters (or a leading `...`) in
    the output's order then its two matrix letters in either order, one letter contracted
    (same size in both), one free letter per operand, no sum over one operand alone. Else None.
    A batch letter that is not leading in an operand is left to einsum: `@` on such strided
    views measured no faster (qbd,kbd->bqk [512, 16, 64] f32: 3.4 ms against 3.6 ms), and
    NumPy >= 2 einsum already calls matmul there; the gain of `@` is einsum's per-call cost
    (~10 us: [8, 16, 16] bij,bjk->bik 2.4 us against 12 us)."""
    if len(node.inputs) != 2 or not all(i.dtype.is_float for i in node.inputs):
        return None
    (a, b), out, _ = parse_spec(node.attr("spec"), 2)
    if any(len(set(s)) != len(s) for s in (a, b)) or len(a) < 2 or len(b) < 2 or len(out) < 2:
        return None
    batch = out[:-2]
    if a[:-2] != batch or b[:-2] != batch or "." in a[-2:] + b[-2:] + out[-2:]:
        return None
    shared = set(a[-2:]) & set(b[-2:])
    if len(shared) != 1:
        return None
    (k,) = shared
    m, n = a[-2:].replace(k, ""), b[-2:].replace(k, "")
    if set(out[-2:]) != {m, n}:
        return None
    ka, kb = a.index(k) - len(a), b.index(k) - len(b)  # from the end: `...` spans several axes
    if node.inputs[0].shape[ka] != node.inputs[1].shape[kb]:
        return None  # a size-1 contracted axis that einsum broadcasts: `@` would not
    return a[-1] == m, b[-1] == k, out[-1] == m


def _swapped(ctx, arg, rank):
    x = arg.at(PREC_POSTFIX)
    return Expr(f"{x}.T" if rank == 2 else f"{x}.swapaxes(-1, -2)", PREC_POSTFIX)


def _matmul_einsum(ctx, args, node, form):
    """a @ b on views with the last two axes swapped where the spec reads them transposed; a
    transposed result as b^T @ a^T, so the result is written in the spec's order."""
    a_sw, b_sw, r_sw = form
    ra, rb = (i.type.rank for i in node.inputs)
    left = _swapped(ctx, args[0], ra) if a_sw else args[0]
    right = _swapped(ctx, args[1], rb) if b_sw else args[1]
    if r_sw:  # (a b)^T = b^T a^T: swap each view back and exchange the operands
        left = args[1] if b_sw else _swapped(ctx, args[1], rb)
        right = args[0] if a_sw else _swapped(ctx, args[0], ra)
    return Expr(f"{left.at(PREC_MUL)} @ {right.at(PREC_MUL + 1)}", PREC_MUL)


def _einsum_emit(ctx, args, node):
    """A (batched) matrix product is `@` on views (one BLAS GEMM per matrix, none of einsum's
    per-call spec parsing). Otherwise, with two or more operands the contraction order
    matters (and numpy.einsum uses BLAS only along a path): decided here when every size is
    a literal, else on the first call for each set of shapes and cached (no optimize=True
    search on every call)."""
    spec = node.attr("spec")
    form = _matmul_form(node)
    if form is not None:
        return _matmul_einsum(ctx, args, node, form)
    ops = ", ".join(a.text for a in args)
    if len(args) < 2 or not ctx.backend.caps.einsum_paths:
        return Expr(f"{ctx.xp}.einsum({spec!r}, {ops})", PREC_POSTFIX)
    shapes = [i.shape for i in node.inputs]
    if all(isinstance(d, int) for sh in shapes for d in sh):
        dummies = [np.empty(sh, dtype=np.float64) for sh in shapes]
        path = np.einsum_path(spec, *dummies, optimize="optimal")[0]
        return Expr(f"{ctx.xp}.einsum({spec!r}, {ops}, optimize={path!r})", PREC_POSTFIX)
    # (the operands written once: one may be an expression, not a name)
    return Expr(f"{ctx.helper('einsum')}({spec!r}, {ops})", PREC_POSTFIX)


def _fresh_letters(used: str):
    return (c for c in string.ascii_letters if c not in used)


def _einsum_vjp(ctx, node, ct, needs):
    subs, out = _explicit(node)
    return [_einsum_operand_grad(node, ct, subs, out, i) if needs[i] else None for i in range(len(node.inputs))]


def _explicit(node):
    """The spec with `...` spelled as letters (right-aligned per operand): NumPy cannot sum
    over `...` axes, and a gradient often must."""
    subs, out, _ = parse_spec(node.attr("spec"), len(node.inputs))
    if not any("." in s for s in subs):
        return subs, out
    ranks = [t.type.rank - len(s.replace(".", "")) for s, t in zip(subs, node.inputs) if "." in s]
    ell = "".join(_fresh_letters("".join(subs) + out))[: max(ranks)]
    expand = []
    for s, t in zip(subs, node.inputs):
        r = t.type.rank - len(s.replace(".", ""))
        expand.append(s.replace(".", ell[len(ell) - r:] if r else ""))
    return expand, out.replace(".", ell)


def _einsum_operand_grad(node, ct, subs, out, i):
    x = node.inputs[i]
    others = [(s, n) for j, (s, n) in enumerate(zip(subs, node.inputs)) if j != i]
    sub = subs[i]
    present = set(out) | {c for s, _ in others for c in s}
    own = dict(zip(sub, x.shape))  # operand i's sizes (a repeated letter has one size)
    # 1. the contraction for the letters of operand i that ct and the others carry, once each
    g_sub = "".join(dict.fromkeys(c for c in sub if c in present))
    g = B.apply("einsum", ct, *[n for _, n in others], spec=full_spec([out] + [s for s, _ in others], g_sub))
    # 2. letters only operand i has: the result is constant along them -> broadcast
    missing = "".join(dict.fromkeys(c for c in sub if c not in present))
    if missing:
        g = B.broadcast_to(B.reshape(g, g.shape + (1,) * len(missing)),
                           g.shape + tuple(own[c] for c in missing))
    cur = g_sub + missing
    # 3. repeated letters (a diagonal, as in "ii->i"): an identity per repeat ties the axes
    target, eyes, seen = [], [], set()
    fresh = _fresh_letters(sub + cur)
    for c in sub:
        if c in seen:
            f = next(fresh)
            eyes.append((c, f))
            target.append(f)
        else:
            target.append(c)
            seen.add(c)
    target_s = "".join(target)
    if eyes or target_s != cur:
        ops, in_subs = [g], [cur]
        for c, f in eyes:
            ops.append(B.apply("eye", n=own[c], m=own[c], dtype=x.dtype))
            in_subs.append(c + f)
        g = B.apply("einsum", *ops, spec=full_spec(in_subs, target_s))
    # 4. axes where operand i had size 1 and einsum broadcast it: sum them back
    return B.unbroadcast(g, x.type)


def _einsum_product(node, i, t):
    ops = list(node.inputs)
    ops[i] = t
    return B.apply("einsum", *ops, spec=node.attr("spec"))


def _einsum_sympy(ctx, args, node):
    subs, out, _ = parse_spec(node.attr("spec"), len(node.inputs))
    arrays = [np.asarray(a, dtype=object) for a in args]
    sizes, ell = _einsum_sizes(subs, [n.type for n in node.inputs])
    # expand `...` into explicit letters, then sum over every assignment of the letters
    ell_letters = "".join(_fresh_letters("".join(subs) + out))[: len(ell)]

    def expand(s, rank):
        if "." not in s:
            return s
        n = rank - len(s.replace(".", ""))
        return s.replace(".", ell_letters[len(ell) - n:])

    subs_x = [expand(s, a.ndim) for s, a in zip(subs, arrays)]
    out_x = out.replace(".", ell_letters)
    letters = sorted(set("".join(subs_x)))
    dims = {}
    for s, a in zip(subs_x, arrays):
        for c, d in zip(s, a.shape):
            dims[c] = max(dims.get(c, 1), d)
    result = np.zeros([dims[c] for c in out_x], dtype=object)
    for idx in np.ndindex(*[dims[c] for c in letters]):
        env = dict(zip(letters, idx))
        term = 1
        for s, a in zip(subs_x, arrays):
            term = term * a[tuple(min(env[c], a.shape[k] - 1) for k, c in enumerate(s))]
        result[tuple(env[c] for c in out_x)] += term
    return result


def _einsum_view(node) -> bool:
    """numpy.einsum (and cupy's) returns a view of its one operand when nothing is summed:
    'ij->ji', 'ii->i', even 'ij->ij' is the caller's array itself."""
    inputs, out = node.attr("spec").split("->")
    return "," not in inputs and set(inputs) == set(out)


EINSUM_PATH = Helper("einsum", '''_PATHS = {}


def _einsum(spec, *operands):
    """numpy.einsum along the contraction order for these shapes, found once (np.einsum_path) and cached."""
    key = (spec,) + tuple(o.shape for o in operands)
    path = _PATHS.get(key)
    if path is None:
        path = _PATHS[key] = xp.einsum_path(spec, *operands, optimize="optimal")[0]
    return xp.einsum(spec, *operands, optimize=path)
''')

register(bilinear(
    "einsum", "linalg", _einsum_infer, _einsum_emit, _einsum_product, _einsum_vjp, _einsum_sympy,
    coerce=_einsum_coerce, view=_einsum_view, doc="spec validated and normalised to explicit form `ij,jk->ik`",
    cost=Cost.CONTRACTION, helpers=(EINSUM_PATH,),
    examples=((("f64[2, 3]", "f64[3, 2]"), {"spec": "ij,jk->ik"}, {}),
              (("f64[3, 3]", "f64[3]"), {"spec": "ii,i->i"}, {}),
              (("f64[2, 1, 3]", "f64[3]", "f64[2]"), {"spec": "...j,j,k->...k"}, {})), axis_map=_einsum_axes,
))
