"""The reduced QR decomposition: `q, r = qr(a)` (numpy.linalg.qr, mode='reduced', batched):
a [..., m, n] = q [..., m, k] r [..., k, n], k = min(m, n), q with orthonormal columns, r upper
triangular (signs as LAPACK's Householder reflections give them: not unique).

As with svd (primitives/svd.py, which also decides k), the record is `qr_pair`, one array
[..., k, m + n]: row i holds q's column i, then r's row i; `parts` takes them apart.

Derivatives (Walter & Lehmann 2018; the form of PyTorch's linalg_qr_backward), for m >= n,
where r is square and invertible: with M = r-bar r^T - q^T q-bar and copyltu(M) the symmetric
matrix with M's upper triangle,
  a-bar = (q-bar + q copyltu(M)) r^-T                          (a triangular solve),
and the JVP, with Y = a-dot r^-1, X = q^T Y, L = tril(X, -1), D = X - L + L^T:
  r-dot = D r,  q-dot = Y - q D.
A wide a (m < n) is [x | y] with x square: x = q u is the square case, and r's right block is
w = q^T y, so w-bar adds y w-bar^T to q-bar, y-bar = q w-bar; the JVP adds w-dot = q-dot^T y + q^T y-dot.
A singular leading block (rank below k) makes r^-1 infinite: the gradient is inf/NaN there, as in
PyTorch.

The signs have no closed form SymPy could follow (its QR is Gram-Schmidt, with a positive
diagonal), so the record has no SymPy meaning (`sympy_note`).
"""
from __future__ import annotations

from ..core.primitive import PREC_POSTFIX, Cost, Expr, Helper, Primitive, register
from ..core.types import dim_add
from . import algebra as B
from . import axis_maps as AX
from .common import need_float
from .factorized import mT, mm
from .svd import reduced_requires, reduced_size


def _infer(types, attrs):
    t = types[0]
    need_float(t, "`qr`")
    k = reduced_size(t, "qr")
    m, n = t.shape[-2:]
    return t.with_(shape=t.shape[:-2] + (k, dim_add(m, n)))


QR = Helper("qr_pair", '''def _qr_pair(a):
    """numpy.linalg.qr(a) (reduced) as one array: row i holds q[:, i], then r[i]."""
    q, r = xp.linalg.qr(a)
    return xp.concatenate([q.swapaxes(-1, -2), r], axis=-1)
''')


def _cols(x, start, stop):
    """x[..., :, start:stop]."""
    return B.apply("index", x, items=(("s", None, None, 1),) * (x.type.rank - 1) + (("s", start, stop, 1),))


def parts(pair, m):
    """(q, r) of a qr_pair node (or of its cotangent or tangent); m: the rows of a."""
    return mT(_cols(pair, None, m)), _cols(pair, m, None)


def _pair(q, r):
    return B.apply("concat", mT(q), r, axis=r.type.rank - 1)


def _r_inv_right(x, r):
    """x r^-1 for an upper triangular r: (r^-T x^T)^T, one triangular solve."""
    return mT(B.apply("solve_triangular", mT(r), mT(x), lower=True))


def _r_inv_t_right(x, r):
    """x r^-T: (r^-1 x^T)^T."""
    return mT(B.apply("solve_triangular", r, mT(x), lower=False))


def _tall_vjp(q, r, gq, gr):
    m_ = B.sub(mm(gr, mT(r)), mm(mT(q), gq))
    sym = B.add(B.apply("triu", m_, k=0), B.apply("tril", mT(m_), k=-1))
    return _r_inv_t_right(B.add(gq, mm(q, sym)), r)


def _tall_jvp(q, r, t):
    y = _r_inv_right(t, r)
    x = mm(mT(q), y)
    low = B.apply("tril", x, k=-1)
    d = B.add(B.sub(x, low), mT(low))
    return B.sub(y, mm(q, d)), mm(d, r)


def _vjp(ctx, node, ct, needs):
    a = node.inputs[0]
    m, n = a.shape[-2:]
    q, r = parts(node, m)
    gq, gr = parts(ct, m)
    if n == q.shape[-1]:
        return [_tall_vjp(q, r, gq, gr)]
    y, gw = _cols(a, m, None), _cols(gr, m, None)
    gx = _tall_vjp(q, _cols(r, None, m), B.add(gq, mm(y, mT(gw))), _cols(gr, None, m))
    return [B.apply("concat", gx, mm(q, gw), axis=a.type.rank - 1)]


def _jvp(ctx, node, ts):
    t = ts[0]
    if t is None:
        return None
    a = node.inputs[0]
    m, n = a.shape[-2:]
    q, r = parts(node, m)
    if n == q.shape[-1]:
        return _pair(*_tall_jvp(q, r, t))
    dq, du = _tall_jvp(q, _cols(r, None, m), _cols(t, None, m))
    dw = B.add(mm(mT(dq), _cols(a, m, None)), mm(mT(q), _cols(t, m, None)))
    return _pair(dq, B.apply("concat", du, dw, axis=a.type.rank - 1))


register(Primitive(
    "qr_pair", "linalg", _infer,
    lambda ctx, args, node: Expr(f"{ctx.helper('qr_pair')}({args[0].text})", PREC_POSTFIX),
    _vjp, _jvp, None, coerce=lambda args, attrs: [B.to_float(args[0])], cost=Cost.CONTRACTION,
    helpers=(QR,), requires=reduced_requires("qr"),
    sympy_note="`qr` (its signs follow LAPACK's Householder reflections, which SymPy's Gram-Schmidt does not; "
               "the tests check it by finite differences, the adjoint test and PyTorch references)",
    doc="numpy.linalg.qr (reduced) as one array (row i: q[:, i], r[i]); Walter & Lehmann's derivatives",
    examples=((("f64[3, 3]",), {}, {}), (("f64[4, 2]",), {}, {}), (("f64[2, 2, 3]",), {}, {})), axis_map=AX.stacked(2),
))
