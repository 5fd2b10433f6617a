"""Positive-definite matrices through their Cholesky factor: what `logdet(a)` and
`cho_solve(cholesky(a), b)` become.

Differentiated as written (through cholesky's rule), a solve with a Cholesky factor costs
three n^3 products in reverse (Murray 2016: L^T L-bar and two triangular solves with n
right-hand sides), although the gradient with respect to a is just -sym(u x^T) (u the solve
of the cotangent), and logdet's is a^-1. So these records take both a and its factor
l = cholesky(a) as inputs: the factor is computed once (CSE shares it with the program's
own cholesky(a)), and the whole derivative is given to a, none to l. That is exact because
l is cholesky(a) by construction (builtin_functions.py makes these nodes only so); the
examples below tie the inputs the same way ("cholesky of 0").

- spd_solve(a, l, b) = (l l^T)^-1 b, the two triangular solves; a-bar = -sym(u x^T) with
  u = spd_solve(a, l, g); b-bar = u.
- spd_logdet(a, l) = 2 sum(log(diag(l))); a-bar = g a^-1, computed as cho_inv(l).
- cho_inv(l) = (l l^T)^-1 from the lower triangle of l: l^-1 by blocked inversion and
  l^-T l^-1 by blocks that skip the zeros (matrix products and BLAS's syrk, as LAPACK's
  potri does with trtri and lauum, which NumPy does not expose). 2000 x 2000 on one thread:
  ~195 ms, against ~330 ms for scipy.linalg.cho_solve(l, I) and ~120 ms for LAPACK's potri.

The SymPy meanings are those of a alone, ((a + a^T) / 2)^-1 b and log det((a + a^T) / 2):
cholesky's convention (its derivative is that of cholesky of the symmetric part).
"""
from __future__ import annotations

import numpy as np

from ..core.primitive import PREC_POSTFIX, Cost, Expr, Helper, Primitive, register
from . import algebra as B
from . import axis_maps as AX
from .common import need_float
from .factorized import _per_matrix, _solve_infer, _solve_meaning, _square, mm, mT, outer, trace


def _sympy():
    import sympy

    return sympy


def _sym(x):
    return B.mul(B.like_const(0.5, x), B.add(x, mT(x)))


# ---- cho_inv -----------------------------------------------------------------------------------
TRI_MM = Helper("tri_mm", '''def _tri_mm(t, m):
    """t @ m for a lower-triangular t (of m's batch shape): blocked, so the zeros are skipped."""
    n = t.shape[-1]
    if n <= 128:
        return t @ m
    h = n // 2
    out = xp.empty_like(m)
    out[..., :h, :] = _tri_mm(t[..., :h, :h], m[..., :h, :])
    out[..., h:, :] = t[..., h:, :h] @ m[..., :h, :] + _tri_mm(t[..., h:, h:], m[..., h:, :])
    return out
''')
MM_TRI = Helper("mm_tri", '''def _mm_tri(m, t):
    """m @ t for a lower-triangular t (of m's batch shape): blocked, so the zeros are skipped."""
    n = t.shape[-1]
    if n <= 128:
        return m @ t
    h = n // 2
    out = xp.empty_like(m)
    out[..., :, :h] = _mm_tri(m[..., :, :h], t[..., :h, :h]) + m[..., :, h:] @ t[..., h:, :h]
    out[..., :, h:] = _mm_tri(m[..., :, h:], t[..., h:, h:])
    return out
''')
TRI_INV = Helper("tri_inv", '''def _tri_inv(l):
    """The inverse of the lower triangle of l: blocked, [[a, 0], [c, d]]^-1 = [[a^-1, 0], [-d^-1 c a^-1, d^-1]]."""
    n = l.shape[-1]
    if n <= 64:
        return xp.linalg.inv(xp.tril(l))
    h = n // 2
    top, bottom = _tri_inv(l[..., :h, :h]), _tri_inv(l[..., h:, h:])
    out = xp.zeros_like(top, shape=l.shape)
    out[..., :h, :h] = top
    out[..., h:, h:] = bottom
    out[..., h:, :h] = -_tri_mm(bottom, _mm_tri(l[..., h:, :h], top))
    return out
''', uses=("tri_mm", "mm_tri"))
TRI_GRAM = Helper("tri_gram", '''def _tri_gram(li):
    """li^T li for a lower-triangular li: blocked, so the zeros are skipped (half a full product)."""
    n = li.shape[-1]
    if n <= 128:
        return xp.swapaxes(li, -1, -2) @ li
    h = n // 2
    c, d = li[..., h:, :h], li[..., h:, h:]
    ct = xp.swapaxes(c, -1, -2)
    out = xp.empty_like(li)
    out[..., :h, :h] = _tri_gram(li[..., :h, :h]) + ct @ c
    out[..., :h, h:] = ct @ d
    out[..., h:, :h] = xp.swapaxes(out[..., :h, h:], -1, -2)
    out[..., h:, h:] = _tri_gram(d)
    return out
''')
CHO_INV = Helper("cho_inv", '''def _cho_inv(l):
    """(l l^T)^-1 from a lower Cholesky factor l: l^-T l^-1."""
    return _tri_gram(_tri_inv(l))
''', uses=("tri_inv", "tri_gram"))


def _cho_inv_infer(types, attrs):
    need_float(types[0], "`cho_inv`")
    _square(types[0], "cho_inv")
    return types[0]


def _cho_inv_vjp(ctx, node, ct, needs):
    """x = (l l^T)^-1: l-bar = -(m + m^T) l with m = x g x, on the lower triangle (all it reads)."""
    m = mm(node, mm(ct, node))
    return [B.apply("tril", B.neg(mm(B.add(m, mT(m)), B.apply("tril", node.inputs[0], k=0))), k=0)]


def _cho_inv_jvp(ctx, node, ts):
    if ts[0] is None:
        return None
    l = B.apply("tril", node.inputs[0], k=0)
    t = B.apply("tril", ts[0], k=0)
    inner = mm(t, mT(l))
    return B.neg(mm(node, mm(B.add(inner, mT(inner)), node)))


def _cho_inv_meaning(m):
    low = m.lower_triangular()
    return (low * low.T).inv()


register(Primitive(
    "cho_inv", "linalg", _cho_inv_infer,
    lambda ctx, args, node: Expr(f"{ctx.helper('cho_inv')}({args[0].text})", PREC_POSTFIX),
    _cho_inv_vjp, _cho_inv_jvp, _per_matrix(_cho_inv_meaning, 2), coerce=lambda args, attrs: [B.to_float(args[0])],
    cost=Cost.CONTRACTION, helpers=(TRI_MM, MM_TRI, TRI_INV, TRI_GRAM, CHO_INV),
    doc="(l l^T)^-1 from the lower triangle of l (a^-1 from a's Cholesky factor): blocked inversion, then syrk",
    examples=((("f64[3, 3]",), {}, {}), (("f64[2, 2, 2]",), {}, {})), axis_map=AX.stacked(2),
))


# ---- spd_solve ---------------------------------------------------------------------------------
_SOLVE_SHAPE = _solve_infer("cho_solve")  # (solve's shape rule: a and b, b being the call's argument 1)


def _spd_solve_infer(types, attrs):
    a, l, b = types
    if l.shape != a.shape:  # made only from cholesky(a): an internal error if not
        raise AssertionError(f"spd_solve: the factor {l} is not of {a}")
    return _SOLVE_SHAPE([a, b], attrs)


CHO_SOLVE = Helper("cho_solve", '''def _cho_solve(l, b):
    """(l l^T)^-1 b from a lower Cholesky factor l, b [..., n, k]: two triangular solves."""
    return _solve_tri(xp.swapaxes(l, -1, -2), _solve_tri(l, b, True), False)
''', uses=("solve_tri",))


def _spd_solve_emit(ctx, args, node):
    call = ctx.helper("cho_solve")
    if node.inputs[2].type.rank == 1:
        return Expr(f"{call}({args[1].text}, {args[2].at(PREC_POSTFIX)}[:, None])[..., 0]", PREC_POSTFIX)
    return Expr(f"{call}({args[1].text}, {args[2].text})", PREC_POSTFIX)


def _spd_solve_vjp(ctx, node, ct, needs):
    a, l, b = node.inputs
    vector = b.type.rank == 1
    # u = a^-1 g: for a batch of vectors g (a batched, b 1-D), a column each
    if vector and a.type.rank > 2:
        u = B.reshape(B.apply("spd_solve", a, l, B.reshape(ct, ct.shape + (1,))), ct.shape)
    else:
        u = B.apply("spd_solve", a, l, ct)
    ga = gb = None
    if needs[0]:
        ga = B.unbroadcast(B.neg(_sym(outer(u, node) if vector else mm(u, mT(node)))), a.type)
    if needs[2]:
        gb = B.sum_(u, range(u.type.rank - 1)) if vector else B.unbroadcast(u, b.type)
    return [ga, None, gb]


def _spd_solve_jvp(ctx, node, ts):
    a, l, b = node.inputs
    ta, _, tb = ts  # l's tangent is a's, already counted through a
    vector = b.type.rank == 1
    rhs = B.broadcast_to(tb, node.shape) if tb is not None else None
    if ta is not None:
        s = _sym(ta)
        da = B.neg(B.apply("einsum", s, node, spec="...ij,...j->...i") if vector else mm(s, node))
        rhs = da if rhs is None else B.add(rhs, da)
    if rhs is None:
        return None
    if vector and a.type.rank > 2:
        return B.reshape(B.apply("spd_solve", a, l, B.reshape(rhs, rhs.shape + (1,))), rhs.shape)
    return B.apply("spd_solve", a, l, rhs)


def _spd_solve_meaning(ctx, args, node):
    a = np.asarray(args[0], dtype=object)
    return _solve_meaning(ctx, [(a + np.swapaxes(a, -1, -2)) / 2, args[2]], node)


register(Primitive(
    "spd_solve", "linalg", _spd_solve_infer, _spd_solve_emit, _spd_solve_vjp, _spd_solve_jvp, _spd_solve_meaning,
    coerce=lambda args, attrs: [B.to_float(x) for x in args], cost=Cost.CONTRACTION, helpers=(CHO_SOLVE,),
    doc="a^-1 b for a positive-definite a, given also l = cholesky(a) (cho_solve(cholesky(a), b)); "
        "a-bar = -sym(u x^T), u = a^-1 g",
    examples=((("f64[3, 3]", "f64[3, 3]", "f64[3, 2]"), {}, {0: "spd", 1: ("cholesky", 0)}),
              (("f64[2, 2, 2]", "f64[2, 2, 2]", "f64[2]"), {}, {0: "spd", 1: ("cholesky", 0)})),
    axis_map=AX.stacked(2, 2, None),
))


# ---- spd_logdet ----------------------------------------------------------------------------------
def _spd_logdet_infer(types, attrs):
    need_float(types[0], "`logdet`")
    _square(types[0], "logdet", 0)
    return types[0].with_(shape=types[0].shape[:-2])


def _spd_logdet_emit(ctx, args, node):
    xp = ctx.xp
    return Expr(f"2 * {xp}.sum({xp}.log({xp}.diagonal({args[1].text}, axis1=-2, axis2=-1)), axis=-1)", 0)


def _spd_logdet_vjp(ctx, node, ct, needs):
    a, l = node.inputs
    return [B.mul(B.reshape(ct, ct.shape + (1, 1)), B.apply("cho_inv", l)), None]


def _spd_logdet_jvp(ctx, node, ts):
    if ts[0] is None:
        return None
    return B.apply("einsum", B.apply("cho_inv", node.inputs[1]), ts[0], spec="...ij,...ij->...")


register(Primitive(
    "spd_logdet", "linalg", _spd_logdet_infer, _spd_logdet_emit, _spd_logdet_vjp, _spd_logdet_jvp,
    _per_matrix(lambda m, l: _sympy().log(((m + m.T) / 2).det()), 0),
    coerce=lambda args, attrs: [B.to_float(x) for x in args], cost=Cost.CONTRACTION,
    doc="log det a of a positive-definite a, given also l = cholesky(a): 2 sum(log(diag(l))); a-bar = g a^-1 "
        "(cho_inv(l))",
    examples=((("f64[3, 3]", "f64[3, 3]"), {}, {0: "spd", 1: ("cholesky", 0)}),
              (("f64[2, 2, 2]", "f64[2, 2, 2]"), {}, {0: "spd", 1: ("cholesky", 0)})), axis_map=AX.stacked(2, 2),
))
