"""Linear algebra that factorizes: solve, inv, det, slogdet's two results, cholesky and
solve_triangular (numpy.linalg semantics, batched over leading axes; `b` of a solve is one
vector when it is 1-D, else a stack of matrices, as NumPy 2 reads it). cho_solve and logdet
are expansions over these (primitives/builtin_functions.py).

Derivatives are the standard closed forms (Giles 2008; Murray 2016 for Cholesky), written
with solves wherever a solve suffices: solve's cotangent in b is solve(a^T, g); cholesky's
VJP is two triangular solves. det and slogdet need the whole inverse (d log|det a| / da is
a^-T), so they use inv: at an exactly singular matrix their gradients raise LinAlgError, as
inv does (PyTorch computes det's gradient there through an SVD; tapeless does not yet).

cholesky reads the lower triangle, as NumPy does, and its derivative is that of
cholesky((a + a^T) / 2), PyTorch's convention: the gradient with respect to a symmetric
matrix, itself symmetric. solve_triangular reads only the triangle it is told to; the
other triangle gets no gradient. NumPy has no triangular solve, and numpy.linalg.solve of
the triangle is an LU (2000 x 2000 with one vector: 59 ms, against 1.6 ms for LAPACK's
substitution), so the generated module defines `_solve_tri`: blocked substitution, halving
the triangle until 64 rows, where numpy.linalg.solve takes the block; the rest is matrix
products, which BLAS does fast (with 2000 right-hand sides it is as fast as LAPACK's trsm).
"""
from __future__ import annotations

import numpy as np

from ..core.diagnostics import UserError
from ..core.primitive import PREC_POSTFIX, Cost, Expr, Helper, Primitive, register
from ..core.types import BroadcastError, TensorType, broadcast_shapes, dim_text, shape_text
from . import algebra as B
from . import axis_maps as AX
from .common import need_float
from .rule_shapes import float_coerce


def _sympy():
    import sympy

    return sympy


# ---- helpers over IR -------------------------------------------------------------------------
def mT(x):
    """The transpose of the last two axes."""
    r = x.type.rank
    return B.apply("transpose", x, perm=tuple(range(r - 2)) + (r - 1, r - 2))


def mm(a, b):
    return B.apply("matmul", a, b)


def matvec(a, v):
    return B.apply("einsum", a, v, spec="...ij,...j->...i")


def outer(u, v):
    return B.apply("einsum", u, v, spec="...i,...j->...ij")


def trace(x):
    return B.apply("einsum", x, spec="...ii->...")


def solve_vec(a, v, lower=None):
    """a^-1 v for a batch of vectors v[..., n] (NumPy 2's solve reads a 2-D or more b as matrices)."""
    col = B.reshape(v, v.shape + (1,))
    x = B.apply("solve", a, col) if lower is None else B.apply("solve_triangular", a, col, lower=lower)
    return B.reshape(x, v.shape)


def _expand2(g):
    """A batch of scalars as a batch of 1 x 1 matrices (to scale matrices)."""
    return B.reshape(g, g.shape + (1, 1))


def phi(x):
    """The lower triangle with the diagonal halved (Murray 2016's Phi)."""
    return B.sub(B.apply("tril", x, k=0), B.mul(B.like_const(0.5, x), B.apply("tril", B.apply("triu", x, k=0), k=0)))


# ---- type rules --------------------------------------------------------------------------------
def _square(t: TensorType, name: str, arg=0) -> None:
    if t.rank < 2 or t.shape[-1] != t.shape[-2]:
        raise UserError(f"`{name}` needs square matrices (shape [..., n, n]), got {t}", arg=arg)


def _one_matrix_infer(name, shape_rule):
    def infer(types, attrs):
        need_float(types[0], f"`{name}`")
        _square(types[0], name)
        return types[0].with_(shape=shape_rule(types[0].shape))

    return infer


def _solve_infer(name):
    """solve(a, b): b 1-D is one vector (a's batch stays), else [..., n, k] with batches broadcast."""

    def infer(types, attrs):
        a, b = types
        need_float(a, f"`{name}`")
        _square(a, name)
        n = a.shape[-1]
        if b.rank == 1:
            if b.shape[0] != n:
                raise UserError(f"`{name}`: {a} and the vector {b} differ in size ({dim_text(n)} vs "
                                f"{dim_text(b.shape[0])})", arg=1)
            return a.with_(shape=a.shape[:-1])
        if b.shape[-2] != n:
            raise UserError(f"`{name}`: {a} and {b} differ in the solved axis ({dim_text(n)} vs "
                            f"{dim_text(b.shape[-2])}); a vector right-hand side must be 1-D", arg=1)
        try:
            batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except BroadcastError:
            raise UserError(f"`{name}`: the batch shapes {shape_text(a.shape[:-2])} and "
                            f"{shape_text(b.shape[:-2])} do not broadcast", arg=1) from None
        return a.with_(shape=batch + (n, b.shape[-1]))

    return infer


# ---- SymPy meanings: per matrix of the batch -------------------------------------------------------
def _per_matrix(fn, n_out_axes):
    """fn(sympy Matrix, ...) -> Matrix or scalar, applied over the batch of the first input."""

    def meaning(ctx, args, node):
        sp = _sympy()
        a = np.asarray(args[0], dtype=object)
        rest = [np.asarray(x, dtype=object) for x in args[1:]]
        out = np.empty(ctx.shape(node.shape), dtype=object)
        batch = out.shape[:out.ndim - n_out_axes] if n_out_axes else out.shape
        for idx in np.ndindex(batch):
            m = sp.Matrix(np.broadcast_to(a, batch + a.shape[-2:])[idx].tolist())
            others = [np.broadcast_to(x, batch + x.shape[-2:])[idx] if x.ndim > 1 else x for x in rest]
            v = fn(m, *others)
            out[idx] = np.array(v.tolist(), dtype=object).reshape(out[idx].shape) if hasattr(v, "tolist") else v
        return out

    return meaning


def _solve_meaning(ctx, args, node):
    sp = _sympy()
    a, b = (np.asarray(x, dtype=object) for x in args)
    out = np.empty(ctx.shape(node.shape), dtype=object)
    if b.ndim == 1:
        for idx in np.ndindex(a.shape[:-2]):
            out[idx] = np.array(list(sp.Matrix(a[idx].tolist()).LUsolve(sp.Matrix(list(b)))), dtype=object)
        return out
    batch = out.shape[:-2]
    a_b, b_b = np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:])
    for idx in np.ndindex(batch):
        out[idx] = np.array(sp.Matrix(a_b[idx].tolist()).LUsolve(sp.Matrix(b_b[idx].tolist())).tolist(), dtype=object)
    return out


# ---- solve -------------------------------------------------------------------------------------------
def _solve_vjp(ctx, node, ct, needs):
    a, b = node.inputs
    vector = b.type.rank == 1
    gb = solve_vec(mT(a), ct) if vector and a.type.rank > 2 else B.apply("solve", mT(a), ct)
    ga = None
    if needs[0]:
        ga = B.neg(outer(gb, node) if vector else mm(gb, mT(node)))
        ga = B.unbroadcast(ga, a.type)
    if needs[1]:
        gb = B.unbroadcast(gb, b.type) if not vector else B.sum_(gb, range(gb.type.rank - 1))
    return [ga, gb if needs[1] else None]


def _solve_jvp(ctx, node, ts):
    a, b = node.inputs
    ta, tb = ts
    vector = b.type.rank == 1
    rhs = None
    if tb is not None:
        rhs = B.broadcast_to(tb, node.shape)
    if ta is not None:
        da = B.neg(matvec(ta, node) if vector else mm(ta, node))
        rhs = da if rhs is None else B.add(rhs, da)
    if rhs is None:
        return None
    if vector and a.type.rank > 2:
        return solve_vec(a, rhs)
    return B.apply("solve", a, rhs)


register(Primitive(
    "solve", "linalg", _solve_infer("solve"),
    lambda ctx, args, node: Expr(f"{ctx.xp}.linalg.solve({args[0].text}, {args[1].text})", PREC_POSTFIX),
    _solve_vjp, _solve_jvp, _solve_meaning, coerce=float_coerce, cost=Cost.CONTRACTION,
    doc="numpy.linalg.solve: a^-1 b; vjp: solve(a^T, g) for b, -that @ x^T for a",
    examples=((("f64[3, 3]", "f64[3, 2]"), {}, {}), (("f64[2, 2]", "f64[2]"), {}, {}),
              (("f64[2, 2, 2]", "f64[2, 1]"), {}, {})), axis_map=AX.stacked(2, None),
))


# ---- inv ---------------------------------------------------------------------------------------------
register(Primitive(
    "inv", "linalg", _one_matrix_infer("inv", lambda s: s),
    lambda ctx, args, node: Expr(f"{ctx.xp}.linalg.inv({args[0].text})", PREC_POSTFIX),
    lambda ctx, node, ct, needs: [B.neg(mm(mT(node), mm(ct, mT(node))))],
    lambda ctx, node, ts: B.neg(mm(node, mm(ts[0], node))) if ts[0] is not None else None,
    _per_matrix(lambda m: m.inv(), 2), coerce=lambda args, attrs: [B.to_float(args[0])], cost=Cost.CONTRACTION,
    doc="numpy.linalg.inv; vjp -y^T g y^T, jvp -y t y", examples=((("f64[3, 3]",), {}, {}), (("f64[2, 2, 2]",), {}, {})),
    axis_map=AX.stacked(2),
))


# ---- det and slogdet -------------------------------------------------------------------------------------
def _inv_T(a):
    return mT(B.apply("inv", a))


def _scale(g, m):
    return B.mul(_expand2(g), m)


register(Primitive(
    "det", "linalg", _one_matrix_infer("det", lambda s: s[:-2]),
    lambda ctx, args, node: Expr(f"{ctx.xp}.linalg.det({args[0].text})", PREC_POSTFIX),
    lambda ctx, node, ct, needs: [_scale(B.mul(ct, node), _inv_T(node.inputs[0]))],
    lambda ctx, node, ts: None if ts[0] is None else B.mul(node, trace(B.apply("solve", node.inputs[0], ts[0]))),
    _per_matrix(lambda m: m.det(), 0), coerce=lambda args, attrs: [B.to_float(args[0])], cost=Cost.CONTRACTION,
    doc="numpy.linalg.det; gradient det(a) a^-T (inf/NaN at a singular a)",
    examples=((("f64[3, 3]",), {}, {}), (("f64[2, 2, 2]",), {}, {})), axis_map=AX.stacked(2),
))
register(Primitive(
    "logabsdet", "linalg", _one_matrix_infer("slogdet", lambda s: s[:-2]),
    lambda ctx, args, node: Expr(f"{ctx.xp}.linalg.slogdet({args[0].text})[1]", PREC_POSTFIX),
    lambda ctx, node, ct, needs: [_scale(ct, _inv_T(node.inputs[0]))],
    lambda ctx, node, ts: None if ts[0] is None else trace(B.apply("solve", node.inputs[0], ts[0])),
    _per_matrix(lambda m: _sympy().log(_sympy().Abs(m.det())), 0), coerce=lambda args, attrs: [B.to_float(args[0])],
    cost=Cost.CONTRACTION, doc="log |det a|, slogdet's second result; gradient a^-T",
    examples=((("f64[3, 3]",), {}, {}), (("f64[2, 2, 2]",), {}, {})), axis_map=AX.stacked(2),
))
register(Primitive(
    "signdet", "linalg", _one_matrix_infer("slogdet", lambda s: s[:-2]),
    lambda ctx, args, node: Expr(f"{ctx.xp}.linalg.slogdet({args[0].text})[0]", PREC_POSTFIX),
    lambda ctx, node, ct, needs: [None], lambda ctx, node, ts: None,
    _per_matrix(lambda m: _sympy().sign(m.det()), 0), coerce=lambda args, attrs: [B.to_float(args[0])],
    doc="the sign of det a (slogdet's first result): derivative 0 everywhere",
    examples=((("f64[3, 3]",), {}, {}),), axis_map=AX.stacked(2),
))


# ---- cholesky --------------------------------------------------------------------------------------
def _tri_solve(a, b, lower):
    return B.apply("solve_triangular", a, b, lower=lower)


def _cholesky_vjp(ctx, node, ct, needs):
    """Murray 2016: a^-bar = L^-T Phi(L^T L^-bar) L^-1, symmetrized (a gradient for a symmetric a)."""
    L = node
    P = phi(mm(mT(L), ct))
    Y = _tri_solve(mT(L), P, lower=False)  # L^-T P
    X = mT(_tri_solve(mT(L), mT(Y), lower=False))  # L^-T P L^-1
    return [B.mul(B.like_const(0.5, X), B.add(X, mT(X)))]


def _cholesky_jvp(ctx, node, ts):
    """L-dot = L Phi(L^-1 sym(a-dot) L^-T)."""
    if ts[0] is None:
        return None
    L = node
    t = B.mul(B.like_const(0.5, ts[0]), B.add(ts[0], mT(ts[0])))
    Z = _tri_solve(L, t, lower=True)  # L^-1 t
    W = mT(_tri_solve(L, mT(Z), lower=True))  # L^-1 t L^-T
    return mm(L, phi(W))


def _cholesky_meaning(m):
    sym = (m + m.T) / 2
    return sym.cholesky(hermitian=False)


register(Primitive(
    "cholesky", "linalg", _one_matrix_infer("cholesky", lambda s: s),
    lambda ctx, args, node: Expr(f"{ctx.xp}.linalg.cholesky({args[0].text})", PREC_POSTFIX),
    _cholesky_vjp, _cholesky_jvp, _per_matrix(_cholesky_meaning, 2), coerce=lambda args, attrs: [B.to_float(args[0])],
    cost=Cost.CONTRACTION,
    doc="numpy.linalg.cholesky (lower; a symmetric positive definite); the derivative of "
        "cholesky((a + a^T) / 2), as PyTorch's",
    examples=((("f64[3, 3]",), {}, {0: "spd"}), (("f64[2, 2, 2]",), {}, {0: "spd"})), axis_map=AX.stacked(2),
))


# ---- solve_triangular -------------------------------------------------------------------------------
def _triangle(x, lower):
    return B.apply("tril" if lower else "triu", x, k=0)


def _tri_vjp(ctx, node, ct, needs):
    a, b = node.inputs
    lower = node.attr("lower")
    vector = b.type.rank == 1
    at = mT(a)
    gb = solve_vec(at, ct, not lower) if vector and a.type.rank > 2 else _tri_solve(at, ct, lower=not lower)
    ga = None
    if needs[0]:
        ga = B.unbroadcast(_triangle(B.neg(outer(gb, node) if vector else mm(gb, mT(node))), lower), a.type)
    if needs[1]:
        gb = B.unbroadcast(gb, b.type) if not vector else B.sum_(gb, range(gb.type.rank - 1))
    return [ga, gb if needs[1] else None]


def _tri_jvp(ctx, node, ts):
    a, b = node.inputs
    lower = node.attr("lower")
    ta, tb = ts
    vector = b.type.rank == 1
    rhs = B.broadcast_to(tb, node.shape) if tb is not None else None
    if ta is not None:
        t = _triangle(ta, lower)
        da = B.neg(matvec(t, node) if vector else mm(t, node))
        rhs = da if rhs is None else B.add(rhs, da)
    if rhs is None:
        return None
    if vector and a.type.rank > 2:
        return solve_vec(a, rhs, lower)
    return _tri_solve(a, rhs, lower)


SOLVE_TRI = Helper("solve_tri", '''def _solve_tri(a, b, lower):
    """a^-1 b for the lower (or upper) triangle of a, b [..., n, k]: blocked substitution."""
    n = a.shape[-1]
    if n <= 64:
        return xp.linalg.solve(xp.tril(a) if lower else xp.triu(a), b)
    h = n // 2
    if lower:
        top = _solve_tri(a[..., :h, :h], b[..., :h, :], True)
        return xp.concatenate([top, _solve_tri(a[..., h:, h:], b[..., h:, :] - a[..., h:, :h] @ top, True)], axis=-2)
    bottom = _solve_tri(a[..., h:, h:], b[..., h:, :], False)
    return xp.concatenate([_solve_tri(a[..., :h, :h], b[..., :h, :] - a[..., :h, h:] @ bottom, False), bottom], axis=-2)
''')


def _tri_emit(ctx, args, node):
    lower = bool(node.attr("lower"))
    a, b = node.inputs
    call = ctx.helper("solve_tri")
    if b.type.rank == 1:  # one vector: solve it as a column
        return Expr(f"{call}({args[0].text}, {args[1].at(PREC_POSTFIX)}[:, None], {lower})[..., 0]", PREC_POSTFIX)
    return Expr(f"{call}({args[0].text}, {args[1].text}, {lower})", PREC_POSTFIX)


def _tri_meaning(ctx, args, node):
    a = np.asarray(args[0], dtype=object)
    rows, cols = np.indices(a.shape[-2:])
    keep = rows >= cols if node.attr("lower") else rows <= cols
    return _solve_meaning(ctx, [np.where(keep, a, 0), args[1]], node)


register(Primitive(
    "solve_triangular", "linalg", _solve_infer("solve_triangular"), _tri_emit, _tri_vjp, _tri_jvp, _tri_meaning,
    coerce=float_coerce, cost=Cost.CONTRACTION, helpers=(SOLVE_TRI,),
    doc="a^-1 b for the lower (lower=true) or upper triangle of a; the other triangle is not read",
    examples=((("f64[3, 3]", "f64[3, 2]"), {"lower": True}, {}), (("f64[2, 2]", "f64[2]"), {"lower": False}, {})),
    axis_map=AX.stacked(2, None),
))
