"""The symmetric eigendecomposition: `w, v = eigh(a)` (numpy.linalg.eigh: eigenvalues
ascending, eigenvectors in the columns of v, from the lower triangle; batched).

The IR gives a node one result, so the record is `eigh_pair`, one array [..., n + 1, n]: row
0 holds w, rows 1.. hold v. The built-in takes the two apart with index nodes, and their
cotangents come back as one cotangent of the pair. Derivatives (Giles 2008): with
K = v^T v-bar, S = (K - K^T) / 2 and F_ij = 1 / (w_j - w_i) off the diagonal,
a-bar = v (diag(w-bar) + F * S) v^T (symmetric, as PyTorch's); the JVP is w-dot = diag(v^T s v),
v-dot = v (F * (v^T s v)) with s = (a-dot + a-dot^T) / 2. Repeated eigenvalues make F infinite:
the eigenvectors are not differentiable there and the gradient is inf/NaN, as in PyTorch. The
products F * S are divisions that give exactly 0 where S is exactly 0 (`over_gaps`), so a loss
of the eigenvalues alone keeps a finite gradient there (PyTorch's too: it skips the term).

Eigenvectors have no closed form SymPy could differentiate at the check's sizes, so the
record has no SymPy meaning (`sympy_note`); tapeless check skips a function that uses it,
saying so, and the tests check it by finite differences, the adjoint (dot-product) test and
recorded PyTorch references.
"""
from __future__ import annotations

from ..core.diagnostics import UserError
from ..core.primitive import PREC_POSTFIX, Cost, Expr, Helper, Primitive, register
from ..core.types import dim_add
from . import algebra as B
from . import axis_maps as AX
from .common import need_float
from .factorized import mT, mm


def _infer(types, attrs):
    t = types[0]
    need_float(t, "`eigh`")
    if t.rank < 2 or t.shape[-1] != t.shape[-2]:
        raise UserError(f"`eigh` needs square matrices (shape [..., n, n]), got {t}", arg=0)
    return t.with_(shape=t.shape[:-2] + (dim_add(t.shape[-2], 1), t.shape[-1]))


EIGH = Helper("eigh_pair", '''def _eigh_pair(a):
    """numpy.linalg.eigh's two results as one array: row 0 the eigenvalues, rows 1.. the vectors."""
    w, v = xp.linalg.eigh(a)
    return xp.concatenate([w[..., None, :], v], axis=-2)
''')


def parts(pair):
    """(w, v) of an eigh_pair node (or of its cotangent or tangent)."""
    lead = (("s", None, None, 1),) * (pair.type.rank - 2)
    return B.apply("index", pair, items=lead + (("i", 0),)), B.apply("index", pair, items=lead + (("s", 1, None, 1),))


def _pair(w, v):
    return B.apply("concat", B.reshape(w, w.shape[:-1] + (1,) + w.shape[-1:]), v, axis=v.type.rank - 2)


def quiet_div(x, d):
    """x / d, but exactly 0 where x is exactly 0 (an unread part's zero cotangent stays 0 where d is 0)."""
    return B.where(B.apply("eq", x, B.like_const(0, x)), B.like_const(0, x), B.div(x, d))


def over_gaps(x, w):
    """x_ij / (w_j - w_i) off the diagonal, 0 on it; exactly 0 where x_ij is (quiet_div), so a
    loss of the eigenvalues alone has a finite gradient where two are equal."""
    n = w.shape[-1]
    gap = B.sub(B.reshape(w, w.shape[:-1] + (1, n)), B.reshape(w, w.shape[:-1] + (n, 1)))
    eye = B.apply("ne", B.apply("eye", n=n, m=n, dtype=w.dtype), B.like_const(0, w))
    return B.where(eye, B.like_const(0, gap), quiet_div(x, B.where(eye, B.like_const(1, gap), gap)))


def diag_matrix(d):
    """A batch of vectors as a batch of diagonal matrices."""
    n = d.shape[-1]
    eye = B.apply("eye", n=n, m=n, dtype=d.dtype)
    return B.mul(B.reshape(d, d.shape[:-1] + (1, n)), eye)


def _vjp(ctx, node, ct, needs):
    w, v = parts(node)
    gw, gv = parts(ct)
    k = mm(mT(v), gv)
    s = B.mul(B.like_const(0.5, k), B.sub(k, mT(k)))
    inner = B.add(diag_matrix(gw), over_gaps(s, w))
    return [mm(v, mm(inner, mT(v)))]


def _jvp(ctx, node, ts):
    if ts[0] is None:
        return None
    w, v = parts(node)
    t = B.mul(B.like_const(0.5, ts[0]), B.add(ts[0], mT(ts[0])))
    m = mm(mT(v), mm(t, v))
    dw = B.apply("einsum", m, spec="...ii->...i")
    dv = mm(v, over_gaps(m, w))
    return _pair(dw, dv)


register(Primitive(
    "eigh_pair", "linalg", _infer,
    lambda ctx, args, node: Expr(f"{ctx.helper('eigh_pair')}({args[0].text})", PREC_POSTFIX),
    _vjp, _jvp, None, coerce=lambda args, attrs: [B.to_float(args[0])], cost=Cost.CONTRACTION,
    helpers=(EIGH,),
    sympy_note="`eigh` (eigenvectors have no closed form SymPy can differentiate; the tests check it by "
               "finite differences, the adjoint test and PyTorch references)",
    doc="numpy.linalg.eigh as one array (row 0: eigenvalues, rows 1..: eigenvectors); Giles 2008's derivatives",
    examples=((("f64[3, 3]",), {}, {}),), axis_map=AX.stacked(2),
))
