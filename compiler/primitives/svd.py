"""The reduced singular value decomposition: `u, s, vh = svd(a)` (numpy.linalg.svd with
full_matrices=False, batched): a [..., m, n] = u [..., m, k] diag(s [..., k]) vh [..., k, n],
k = min(m, n), s descending.

The IR gives a node one result, so the record is `svd_triple`, one array [..., k, 1 + m + n]:
row i is the i-th singular triplet, s_i, then u's column i, then vh's row i. The built-in takes
the three apart with index nodes (`parts`, which needs m to find the boundary), and their
cotangents come back as one cotangent of the triple.

k must be known when compiling: equal sizes, sizes whose difference is a constant, or a literal
size against a symbolic one (then k is the literal, and the other size must be at least as
large when running: a size check says so, not a wrong shape).

Derivatives (Townsend 2016, the form of PyTorch's svd_backward), with V = vh^T,
E_ij = s_j^2 - s_i^2 and X / E meaning 0 on the diagonal:
  a-bar = u (diag(s-bar) + ((J - J^T) / E) S + S ((K - K^T) / E)) vh
          + (I - u u^T) u-bar S^-1 vh + u S^-1 v-bar^T (I - V V^T),   J = u^T u-bar, K = V^T v-bar
(the last two only where m > k, n > k). The JVP, with P = u^T a-dot V: s-dot = diag(P),
u-dot = u ((P S + S P^T) / E) + (I - u u^T) a-dot V S^-1, V-dot = V ((S P + P^T S) / E)
+ (I - V V^T) a-dot^T u S^-1. Equal singular values make E zero, and zero ones of a non-square
a make S^-1 infinite: u and vh are not differentiable there and their gradients are inf/NaN, as
in PyTorch. s alone always is: the divisions give exactly 0 where their numerator is exactly 0,
as it is when the loss does not read u or vh (so `norm(a, "nuc")` of the identity has gradient u vh, not NaN).

Singular vectors have no closed form SymPy could differentiate, so the record has no SymPy
meaning (`sympy_note`); the tests check it by finite differences, the adjoint test and PyTorch
references.
"""
from __future__ import annotations

from ..core.diagnostics import UserError
from ..core.primitive import PREC_POSTFIX, Cost, Expr, Helper, Primitive, register
from ..core.types import Dim, dim_add, dim_sub, dim_text
from . import algebra as B
from . import axis_maps as AX
from .common import need_float
from .eigen import diag_matrix, over_gaps, quiet_div
from .factorized import mT, mm


def reduced_size(t, name: str):
    """k = min(m, n) of a [..., m, n] operand, as far as compiling can know it."""
    if t.rank < 2:
        raise UserError(f"`{name}` needs matrices (shape [..., m, n]), got {t}", arg=0)
    m, n = t.shape[-2:]
    diff = dim_sub(m, n)
    if isinstance(diff, int):
        return m if diff <= 0 else n
    if isinstance(m, Dim) != isinstance(n, Dim):
        return n if isinstance(n, int) else m
    raise UserError(f"`{name}` of {t}: which of {dim_text(m)} and {dim_text(n)} is smaller must be known when "
                    "compiling (k = min(m, n) sizes the results); give one of them as a literal", arg=0)


def reduced_requires(name: str):
    """The run-time check that a symbolic size is at least the literal k taken for it."""

    def requires(node):
        t = node.inputs[0].type
        k = reduced_size(t, name)
        return [(dim_sub(d, k), f"`{name}` of {t} takes k = {dim_text(k)}: {dim_text(d)} must be at least that")
                for d in t.shape[-2:] if not isinstance(dim_sub(d, k), int)]

    return requires


def _infer(types, attrs):
    t = types[0]
    need_float(t, "`svd`")
    k = reduced_size(t, "svd")
    m, n = t.shape[-2:]
    return t.with_(shape=t.shape[:-2] + (k, dim_add(dim_add(m, n), 1)))


SVD = Helper("svd_triple", '''def _svd_triple(a):
    """numpy.linalg.svd(a, full_matrices=False) as one array: row i holds s[i], u[:, i], vh[i]."""
    u, s, vh = xp.linalg.svd(a, full_matrices=False)
    return xp.concatenate([s[..., None], u.swapaxes(-1, -2), vh], axis=-1)
''')


def parts(triple, m):
    """(u, s, vh) of an svd_triple node (or of its cotangent or tangent); m: the rows of a."""
    lead = (("s", None, None, 1),) * (triple.type.rank - 1)
    end = dim_add(m, 1)
    s = B.apply("index", triple, items=lead + (("i", 0),))
    u = mT(B.apply("index", triple, items=lead + (("s", 1, end, 1),)))
    vh = B.apply("index", triple, items=lead + (("s", end, None, 1),))
    return u, s, vh


def _triple(u, s, vh):
    return B.apply("concat", B.reshape(s, s.shape + (1,)), mT(u), vh, axis=vh.type.rank - 1)


def _row(s):
    return B.reshape(s, s.shape[:-1] + (1, s.shape[-1]))


def _col(s):
    return B.reshape(s, s.shape + (1,))


def _vjp(ctx, node, ct, needs):
    m, n = node.inputs[0].shape[-2:]
    u, s, vh = parts(node, m)
    gu, gs, gvh = parts(ct, m)
    k, s2 = s.shape[-1], B.mul(s, s)
    j = mm(mT(u), gu)
    kv = mm(vh, mT(gvh))  # V^T v-bar
    inner = B.add(diag_matrix(gs), B.add(B.mul(over_gaps(B.sub(j, mT(j)), s2), _row(s)),
                                   B.mul(_col(s), over_gaps(B.sub(kv, mT(kv)), s2))))
    ga = mm(u, mm(inner, vh))
    if m != k:  # (I - u u^T) u-bar S^-1 vh
        ga = B.add(ga, mm(quiet_div(B.sub(gu, mm(u, j)), _row(s)), vh))
    if n != k:  # u S^-1 v-bar^T (I - V V^T)
        ga = B.add(ga, mm(u, quiet_div(B.sub(gvh, mm(mT(kv), vh)), _col(s))))
    return [ga]


def _jvp(ctx, node, ts):
    t = ts[0]
    if t is None:
        return None
    m, n = node.inputs[0].shape[-2:]
    u, s, vh = parts(node, m)
    k, s2 = s.shape[-1], B.mul(s, s)
    v = mT(vh)
    tv = mm(t, v)
    p = mm(mT(u), tv)
    ds = B.apply("einsum", p, spec="...ii->...i")
    ps = B.mul(p, _row(s))  # P S; its transpose is S P^T
    sp = B.mul(_col(s), p)  # S P; its transpose is P^T S
    du = mm(u, over_gaps(B.add(ps, mT(ps)), s2))
    dv = mm(v, over_gaps(B.add(sp, mT(sp)), s2))
    if m != k:
        du = B.add(du, B.div(B.sub(tv, mm(u, p)), _row(s)))
    if n != k:
        dv = B.add(dv, B.div(B.sub(mm(mT(t), u), mm(v, mT(p))), _row(s)))
    return _triple(du, ds, mT(dv))


register(Primitive(
    "svd_triple", "linalg", _infer,
    lambda ctx, args, node: Expr(f"{ctx.helper('svd_triple')}({args[0].text})", PREC_POSTFIX),
    _vjp, _jvp, None, coerce=lambda args, attrs: [B.to_float(args[0])], cost=Cost.CONTRACTION,
    helpers=(SVD,), requires=reduced_requires("svd"),
    sympy_note="`svd` (singular vectors have no closed form SymPy can differentiate; the tests check it by "
               "finite differences, the adjoint test and PyTorch references)",
    doc="numpy.linalg.svd(full_matrices=False) as one array (row i: s[i], u[:, i], vh[i]); Townsend 2016's "
        "derivatives",
    examples=((("f64[3, 3]",), {}, {}), (("f64[4, 2]",), {}, {}), (("f64[2, 2, 3]",), {}, {})), axis_map=AX.stacked(2),
))
