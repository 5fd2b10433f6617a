"""Convolution by im2col, one chunk of images at a time (primitives/builtin_functions.py lowers
conv1d and conv2d to `conv` over the zero-padded input).

    conv(x, w)               x [N, C, in...], w [O, C / groups, k...] -> [N, O, out...]
    conv_grad_w(g, x)        the gradient of w for the cotangent g [N, O, out...]: [O, C / groups, k...]
    conv_grad_x(g, w)        the gradient of x: [N, C, in...] (attribute `shape`)

Each is bilinear, and the transpose of each with respect to one operand is another of the three
(so gradients of gradients stay in the family). The helpers copy the windows of a chunk of
images (sliding_window_view, strided) into one column buffer [images, groups, C / groups * k...,
out...] (im2col: the copy runs along the last spatial axis, contiguous in x) and multiply by
w with one GEMM per image and group, writing into the chunk's view of the result. The chunk holds
about _IM2COL_BYTES of columns (at least one image): the column matrix of the whole batch, the
largest array of the computation (C k... / stride... times x), never exists, and a chunk's
columns are still in cache when the GEMM reads them. conv_grad_w copies the columns again rather
than keeping them from the forward pass: a second copy costs less than holding them all.

In the NumPy backend's fused loops (Loop.images, codegen/fused/), conv and conv_grad_w run on a
block of images instead: the block's columns are copied once (_conv_columns with a chunk of the
loop's block) and conv_block and conv_grad_w_block both multiply them, so a layer's gradient
(conv, relu, mean, the mask, the gradient of w) is one loop in which the activations and their
cotangent exist a block at a time (issue 18, W9: 4.19 -> 0.68 MiB, the hand version 2.20).
"""
from __future__ import annotations

import numpy as np

from ..core.diagnostics import UserError
from ..core.primitive import PREC_POSTFIX, Cost, Expr, Helper, Images, Loop, register
from ..core.types import TensorType, dim_div, dim_mul, dim_prod, dim_text
from . import algebra as B
from . import axis_maps as AX
from .common import Combine
from .rule_shapes import bilinear
from .windows import window_shape, window_values

_ATTRS = ("kernel", "stride", "dilation", "groups")

COLUMNS = Helper("conv_columns", '''_IM2COL_BYTES = 1 << 19  # a chunk's column buffer (im2col): L2-sized, as the fused loops' blocks


def _conv_columns(x, kernel, stride, dilation, groups, chunk=None):
    """The windows of x [N, C, in...] as a view [N, groups, C / groups * k..., out...] would be,
    were it contiguous ([N, C, k..., out...]), a copy function filling a buffer with the
    windows of images [i, j), and a chunk of images whose columns take about _IM2COL_BYTES
    (or `chunk` images: a fused loop's blocks)."""
    n = len(kernel)
    extents = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    win = xp.lib.stride_tricks.sliding_window_view(x, extents, axis=tuple(range(-n, 0)))
    win = win[(Ellipsis,) + tuple(slice(None, None, s) for s in stride) + tuple(slice(None, None, d) for d in dilation)]
    win = win.transpose((0, 1) + tuple(range(2 + n, 2 + 2 * n)) + tuple(range(2, 2 + n)))  # [N, C, k..., out...]
    out = win.shape[2 + n:]
    ck = (x.shape[1] // groups) * _prod(kernel)
    per_image = x.shape[1] * _prod(kernel) * _prod(out) * x.itemsize
    if chunk is None:
        chunk = _IM2COL_BYTES // max(1, per_image)
    chunk = max(1, min(x.shape[0], chunk))
    buf = xp.empty(chunk * per_image // x.itemsize, dtype=x.dtype)

    def columns(i, j):
        cols = buf[:(j - i) * (per_image // x.itemsize)].reshape((j - i,) + win.shape[1:])
        xp.copyto(cols, win[i:j])
        return cols.reshape(j - i, groups, ck, _prod(out))

    return columns, chunk, out, ck


def _prod(values):
    p = 1
    for v in values:
        p *= v
    return p
''')

CONV = Helper("conv", '''def _conv(x, w, kernel, stride, dilation, groups):
    """conv(x [N, C, in...], w [O, C / groups, k...]) -> [N, O, out...], chunk by chunk of images:
    im2col, then one GEMM per image and group into the chunk's view of the result."""
    columns, chunk, out, ck = _conv_columns(x, kernel, stride, dilation, groups)
    n, o = x.shape[0], w.shape[0]
    z = xp.empty((n, o) + out, dtype=x.dtype)
    zv = z.reshape(n, groups, o // groups, _prod(out))
    wm = w.reshape(groups, o // groups, ck)
    for i in range(0, n, chunk):
        j = min(i + chunk, n)
        xp.matmul(wm, columns(i, j), out=zv[i:j])
    return z
''', uses=("conv_columns",))

CONV_GRAD_W = Helper("conv_grad_w", '''def _conv_grad_w(g, x, kernel, stride, dilation, groups):
    """The gradient of w in conv(x, w) for the cotangent g [N, O, out...]: the sum over images of
    g's rows times their columns transposed, chunk by chunk (the columns copied again)."""
    columns, chunk, out, ck = _conv_columns(x, kernel, stride, dilation, groups)
    n, o = g.shape[0], g.shape[1]
    gv = g.reshape(n, groups, o // groups, _prod(out))
    dw = xp.zeros((groups, o // groups, ck), dtype=g.dtype)
    for i in range(0, n, chunk):
        j = min(i + chunk, n)
        dw += xp.sum(xp.matmul(gv[i:j], columns(i, j).swapaxes(-1, -2)), axis=0)
    return dw.reshape((o, x.shape[1] // groups) + tuple(kernel))
''', uses=("conv_columns",))

CONV_BLOCK = Helper("conv_block", '''def _conv_block(cols, w, out):
    """A fused loop's block of conv(x, w) from its columns [images, groups, C / groups * k..., out...]:
    one GEMM per image and group into `out` (the block's rows, C-contiguous)."""
    n, groups, ck, p = cols.shape
    o = w.shape[0]
    xp.matmul(w.reshape(groups, o // groups, ck), cols, out=out.reshape(n, groups, o // groups, p))
''')

CONV_GRAD_W_BLOCK = Helper("conv_grad_w_block", '''def _conv_grad_w_block(g, cols, kernel):
    """A fused loop's block of the gradient of w for the cotangent's rows g [images, O, out...] and
    the block's columns [images, groups, C / groups * k..., out...]."""
    n, groups, ck, p = cols.shape
    o = g.shape[1]
    dw = xp.sum(xp.matmul(g.reshape(n, groups, o // groups, p), cols.swapaxes(-1, -2)), axis=0)
    return dw.reshape((o, ck // _prod(kernel)) + tuple(kernel))
''', uses=("conv_columns",))

CONV_GRAD_X = Helper("conv_grad_x", '''def _conv_grad_x(g, w, shape, kernel, stride, dilation, groups):
    """The gradient of x in conv(x, w) for the cotangent g [N, O, out...]: per chunk of images,
    w's transpose times g's rows gives the columns' gradient, whose kernel positions are added
    back into the chunk's view of the result (the transpose of im2col)."""
    n, o = g.shape[0], g.shape[1]
    m = len(kernel)
    out = g.shape[2:]
    c = shape[1]
    ck = (c // groups) * _prod(kernel)
    per_image = c * _prod(kernel) * _prod(out) * g.itemsize
    chunk = max(1, min(n, _IM2COL_BYTES // max(1, per_image)))
    gv = g.reshape(n, groups, o // groups, _prod(out))
    wt = w.reshape(groups, o // groups, ck).swapaxes(-1, -2)
    dx = xp.zeros(shape, dtype=g.dtype)
    buf = xp.empty(chunk * per_image // g.itemsize, dtype=g.dtype)
    positions = [()]
    for k in kernel:
        positions = [p + (q,) for p in positions for q in range(k)]
    for i in range(0, n, chunk):
        j = min(i + chunk, n)
        cols = buf[:(j - i) * (per_image // g.itemsize)].reshape(j - i, groups, ck, _prod(out))
        xp.matmul(wt, gv[i:j], out=cols)
        cols = cols.reshape((j - i, c) + tuple(kernel) + tuple(out))
        target = dx[i:j]
        for offsets in positions:
            place = tuple(slice(q * d, q * d + s * (e - 1) + 1, s) for q, d, s, e in zip(offsets, dilation, stride, out))
            target[(Ellipsis,) + place] += cols[(slice(None), slice(None)) + offsets]
    return dx
''', uses=("conv_columns",))


def _check(x, w, groups, what):
    if x.rank != w.rank or x.rank < 3:
        raise UserError(f"`{what}` takes x [N, C, in...] and w [O, C / groups, k...] of one rank, got {x} and {w}")
    if dim_mul(w.shape[1], groups) != x.shape[1]:
        raise UserError(f"`{what}`: x {x} has {dim_text(x.shape[1])} channels, w {w} with groups={groups} "
                        f"takes {dim_text(dim_mul(w.shape[1], groups))}")


def _infer(types, attrs):
    x, w = types
    _check(x, w, attrs["groups"], "conv")
    out = window_shape(x.shape, attrs["kernel"], attrs["stride"], attrs["dilation"])
    return x.with_(shape=(x.shape[0], w.shape[0]) + out)


def _grad_w_infer(types, attrs):
    g, x = types
    k = tuple(attrs["kernel"])
    cg = dim_div(x.shape[1], attrs["groups"])
    return g.with_(shape=(g.shape[1], cg) + k)


def _grad_x_infer(types, attrs):
    g = types[0]
    return TensorType(g.dtype, tuple(attrs["shape"]), g.weak)


def _call(helper, with_shape=False):
    def emit(ctx, args, node):
        name = ctx.helper(helper)
        parts = [a.text for a in args]
        if with_shape:
            parts.append(f"shape={ctx.shape(node.shape)}")
        parts += [f"{k}={ctx.literal(node.attr(k))}" for k in _ATTRS]
        return Expr(f"{name}({', '.join(parts)})", PREC_POSTFIX)

    return emit


def _attrs(node):
    return {k: node.attr(k) for k in _ATTRS}


# ---- in a fused loop: a block of images from its columns, copied once for conv and conv_grad_w --------
def _window_key(node):
    return tuple(node.attr(k) for k in _ATTRS)


def _block_columns(ctx, x, rows, node):
    attrs = ", ".join(f"{k}={ctx.literal(node.attr(k))}" for k in _ATTRS)
    return f"{ctx.helper('conv_columns')}({x}, {attrs}, chunk={rows})[0]"


def _column_bytes(node, x, out):
    return dim_mul(x.dtype.itemsize, dim_prod((x.shape[1], *node.attr("kernel"), *out)))


def _conv_block(ctx, args, out, node):
    cols, w = args
    return f"{ctx.helper('conv_block')}({cols.text}, {w.text}, out={out})"


def _grad_w_block(ctx, args, out, node):
    g, cols = args
    return f"{ctx.helper('conv_grad_w_block')}({g.text}, {cols.text}, kernel={ctx.literal(node.attr('kernel'))})"


CONV_IMAGES = Images((True, False), 0, _window_key, _block_columns, _conv_block,
                     lambda n: _column_bytes(n, n.inputs[0], n.shape[2:]))
GRAD_W_IMAGES = Images((True, True), 1, _window_key, _block_columns, _grad_w_block,
                       lambda n: _column_bytes(n, n.inputs[1], n.inputs[0].shape[2:]))


def conv(x, w, **attrs):
    return B.apply("conv", x, w, **attrs)


def conv_grad_w(g, x, **attrs):
    return B.apply("conv_grad_w", g, x, **attrs)


def conv_grad_x(g, w, shape, **attrs):
    return B.apply("conv_grad_x", g, w, shape=tuple(shape), **attrs)


# ---- the rules: each transpose is one of the three ---------------------------------------------------
def _conv_vjp(ctx, node, ct, needs):
    x, w = node.inputs
    a = _attrs(node)
    return [conv_grad_x(ct, w, x.shape, **a) if needs[0] else None, conv_grad_w(ct, x, **a) if needs[1] else None]


def _conv_product(node, i, t):
    x, w = node.inputs
    return conv(t, w, **_attrs(node)) if i == 0 else conv(x, t, **_attrs(node))


def _grad_w_vjp(ctx, node, ct, needs):
    g, x = node.inputs
    a = _attrs(node)
    return [conv(x, ct, **a) if needs[0] else None, conv_grad_x(g, ct, x.shape, **a) if needs[1] else None]


def _grad_w_product(node, i, t):
    g, x = node.inputs
    return conv_grad_w(t, x, **_attrs(node)) if i == 0 else conv_grad_w(g, t, **_attrs(node))


def _grad_x_vjp(ctx, node, ct, needs):
    g, w = node.inputs
    a = _attrs(node)
    return [conv(ct, w, **a) if needs[0] else None, conv_grad_w(g, ct, **a) if needs[1] else None]


def _grad_x_product(node, i, t):
    g, w = node.inputs
    a = _attrs(node)
    return conv_grad_x(t, w, node.shape, **a) if i == 0 else conv_grad_x(g, t, node.shape, **a)


# ---- meanings on object arrays (the SymPy check), written from the definition ----------------------------
def _windows(x, kernel, stride, dilation, out):
    """x [N, C, in...] -> its windows [N, C, out..., k...] (object arrays)."""
    return window_values(x, kernel, stride, dilation, x.shape[:2] + tuple(out) + tuple(kernel))


def _conv_meaning(ctx, args, node):
    x, w = (np.asarray(a, dtype=object) for a in args)
    k, s, d, groups = (node.attr(a) for a in _ATTRS)
    n = len(k)
    shape = ctx.shape(node.shape)
    out = np.empty(shape, dtype=object)
    cg, og = x.shape[1] // groups, w.shape[0] // groups
    for gi in range(groups):
        win = _windows(x[:, gi * cg:(gi + 1) * cg], k, s, d, shape[2:])  # [N, cg, out..., k...]
        z = np.tensordot(win, w[gi * og:(gi + 1) * og], axes=([1] + list(range(2 + n, 2 + 2 * n)),
                                                               [1] + list(range(2, 2 + n))))  # [N, out..., og]
        out[:, gi * og:(gi + 1) * og] = np.moveaxis(z, -1, 1)
    return out


def _grad_w_meaning(ctx, args, node):
    g, x = (np.asarray(a, dtype=object) for a in args)
    k, s, d, groups = (node.attr(a) for a in _ATTRS)
    n = len(k)
    cg, og = x.shape[1] // groups, g.shape[1] // groups
    parts = []
    for gi in range(groups):
        win = _windows(x[:, gi * cg:(gi + 1) * cg], k, s, d, g.shape[2:])
        parts.append(np.tensordot(g[:, gi * og:(gi + 1) * og], win,
                                  axes=([0] + list(range(2, 2 + n)), [0] + list(range(2, 2 + n)))))  # [og, cg, k...]
    return np.concatenate(parts, axis=0)


def _grad_x_meaning(ctx, args, node):
    g, w = (np.asarray(a, dtype=object) for a in args)
    k, s, d, groups = (node.attr(a) for a in _ATTRS)
    n = len(k)
    shape = ctx.shape(node.shape)
    dx = np.zeros(shape, dtype=object)
    cg, og = shape[1] // groups, g.shape[1] // groups
    out = g.shape[2:]
    for gi in range(groups):
        cols = np.tensordot(g[:, gi * og:(gi + 1) * og], w[gi * og:(gi + 1) * og], axes=([1], [0]))  # [N, out..., cg, k...]
        for idx in np.ndindex(tuple(out) + tuple(k)):
            pos, off = idx[:n], idx[n:]
            src = tuple(p * st + o * dl for p, o, st, dl in zip(pos, off, s, d))
            sl = (slice(None), slice(gi * cg, (gi + 1) * cg)) + src
            dx[sl] = dx[sl] + cols[(slice(None),) + pos + (slice(None),) + off]
    return dx


_EX = {"kernel": (2, 2), "stride": (1, 2), "dilation": (1, 1), "groups": 1}
_EX1 = {"kernel": (2,), "stride": (1,), "dilation": (2,), "groups": 2}

register(bilinear(
    "conv", "linalg", _infer, _call("conv"), _conv_product, _conv_vjp, _conv_meaning,
    doc="convolution (cross-correlation) of x [N, C, in...] with w [O, C / groups, k...]: im2col by chunks of images",
    cost=Cost.CONTRACTION, allocates=True, helpers=(COLUMNS, CONV, CONV_BLOCK), loop=Loop(images=CONV_IMAGES),
    examples=((("f64[2, 2, 3, 4]", "f64[3, 2, 2, 2]"), _EX, {}), (("f64[1, 2, 5]", "f64[2, 1, 2]"), _EX1, {})),
    axis_map=AX.conv,
))

register(bilinear(
    "conv_grad_w", "linalg", _grad_w_infer, _call("conv_grad_w"), _grad_w_product, _grad_w_vjp, _grad_w_meaning,
    doc="the gradient of conv's w for a cotangent g [N, O, out...] and x",
    cost=Cost.CONTRACTION, allocates=True, helpers=(COLUMNS, CONV_GRAD_W, CONV_GRAD_W_BLOCK),
    loop=Loop(images=GRAD_W_IMAGES, combine=Combine.SUM),
    examples=((("f64[2, 3, 2, 2]", "f64[2, 2, 3, 4]"), _EX, {}), (("f64[1, 2, 3]", "f64[1, 2, 5]"), _EX1, {})),
))

register(bilinear(
    "conv_grad_x", "linalg", _grad_x_infer, _call("conv_grad_x", with_shape=True), _grad_x_product, _grad_x_vjp,
    _grad_x_meaning, doc="the gradient of conv's x for a cotangent g [N, O, out...] and w",
    cost=Cost.CONTRACTION, allocates=True, writes_shape=True, helpers=(COLUMNS, CONV_GRAD_X),
    examples=((("f64[2, 3, 2, 2]", "f64[3, 2, 2, 2]"), dict(_EX, shape=(2, 2, 3, 4)), {}),
              (("f64[1, 2, 3]", "f64[2, 1, 2]"), dict(_EX1, shape=(1, 2, 5)), {})),
))
