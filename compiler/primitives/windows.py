"""Sliding windows: the primitive pooling is built from (primitives/builtin_functions.py:
max_pool2d, avg_pool2d), and what a convolution's helpers read (primitives/conv.py).

windows(x, kernel, stride, dilation) views the last len(kernel) axes of x as windows:
[..., H, W] -> [..., OH, OW, KH, KW], OH = (H - (dh (KH - 1) + 1)) // sh + 1, through
sliding_window_view (a view, no copy) and a strided slice. A convolution copies the
same view, a chunk of images at a time, into column matrices and multiplies them by the
kernel (primitives/conv.py), never a Python loop over pixels. The op is linear: its transpose, windows_grad, adds each kernel position's slab of the cotangent
back into place, one vectorised add per kernel position (KH * KW of them).
"""
from __future__ import annotations

import numpy as np

from ..core.diagnostics import UserError
from ..core.primitive import PREC_POSTFIX, Expr, Helper, register
from ..core.types import TensorType, dim_add, dim_text
from . import algebra as B
from . import axis_maps as AX
from .common import helper_call
from .rule_shapes import linear


def window_shape(shape, kernel, stride, dilation):
    """The output sizes of the windowed axes, or a UserError saying why not."""
    lead = len(shape) - len(kernel)
    out = []
    for a, (d, k, s, dl) in enumerate(zip(shape[lead:], kernel, stride, dilation)):
        extent = dl * (k - 1) + 1
        if isinstance(d, int):
            if d < extent:
                raise UserError(f"a window of {k} (dilation {dl}) does not fit axis {lead + a} of size {d}")
            out.append((d - extent) // s + 1)
        elif s == 1:
            out.append(dim_add(d, 1 - extent))
        else:
            raise UserError(f"a stride of {s} over axis {lead + a} of symbolic size {dim_text(d)}: the output "
                            "size would be a floor division; use a literal size or stride 1")
    return tuple(out)


def _infer(types, attrs):
    t = types[0]
    k = attrs["kernel"]
    if t.rank < len(k):
        raise UserError(f"{len(k)}-D windows need an array of rank {len(k)} or more, got {t}")
    spatial = window_shape(t.shape, k, attrs["stride"], attrs["dilation"])
    return t.with_(shape=t.shape[:t.rank - len(k)] + spatial + tuple(k))


def _emit(ctx, args, node):
    k, s, dl = node.attr("kernel"), node.attr("stride"), node.attr("dilation")
    n = len(k)
    extents = tuple(d * (kk - 1) + 1 for kk, d in zip(k, dl))
    axes = tuple(range(-n, 0))
    view = (f"{ctx.xp}.lib.stride_tricks.sliding_window_view({args[0].text}, {extents}, "
            f"axis={axes if n > 1 else axes[0]})")
    steps = [f"::{v}" if v != 1 else ":" for v in s + dl]
    if all(v == ":" for v in steps):
        return Expr(view, PREC_POSTFIX)
    return Expr(f"{view}[..., {', '.join(steps)}]", PREC_POSTFIX)


def window_values(x: np.ndarray, k, s, dl, shape) -> np.ndarray:
    """The windows of an object array x, of the given result shape [..., out..., k...], element
    by element from the definition (the SymPy meaning of windows, and of conv: primitives/conv.py)."""
    n = len(k)
    out = np.empty(shape, dtype=object)
    lead = shape[:len(shape) - 2 * n]
    for idx in np.ndindex(shape[len(lead):]):
        pos, off = idx[:n], idx[n:]
        src = tuple(p * st + o * d for p, o, st, d in zip(pos, off, s, dl))
        out[(Ellipsis,) + idx] = x[(Ellipsis,) + src]
    return out


def _meaning(ctx, args, node):
    x = np.asarray(args[0], dtype=object)
    return window_values(x, node.attr("kernel"), node.attr("stride"), node.attr("dilation"), ctx.shape(node.shape))


def _vjp(ctx, node, ct, needs):
    x = node.inputs[0]
    return [B.apply("windows_grad", ct, shape=x.shape, kernel=node.attr("kernel"), stride=node.attr("stride"),
                    dilation=node.attr("dilation"))]


register(linear(
    "windows", "shape", _infer, _emit, _vjp, _meaning, view=True,
    doc="sliding windows over the last axes (sliding_window_view, strided): [..., H, W] -> [..., OH, OW, KH, KW]",
    examples=((("f64[2, 4, 5]",), {"kernel": (2, 3), "stride": (1, 2), "dilation": (1, 1)}, {}),
              (("f64[7]",), {"kernel": (2,), "stride": (2,), "dilation": (2,)}, {})), axis_map=AX.windows,
))


WINDOWS_GRAD = Helper("windows_grad", '''def _windows_grad(g, shape, kernel, stride, dilation):
    """The transpose of windows: each kernel position's slab of g added back where it was read."""
    n = len(kernel)
    out = xp.zeros(shape, dtype=g.dtype)
    sizes = g.shape[g.ndim - 2 * n:g.ndim - n]
    for offsets in _kernel_positions(kernel):
        target = tuple(slice(o * d, o * d + s * (m - 1) + 1, s)
                       for o, d, s, m in zip(offsets, dilation, stride, sizes))
        out[(Ellipsis,) + target] += g[(Ellipsis,) + tuple(slice(None) for _ in range(n)) + offsets]
    return out


def _kernel_positions(kernel):
    """Every index into a kernel of this shape, in order."""
    positions = [()]
    for k in kernel:
        positions = [p + (i,) for p in positions for i in range(k)]
    return positions
''')


def _grad_infer(types, attrs):
    return TensorType(types[0].dtype, tuple(attrs["shape"]), types[0].weak)


def _grad_meaning(ctx, args, node):
    g = np.asarray(args[0], dtype=object)
    k, s, dl = node.attr("kernel"), node.attr("stride"), node.attr("dilation")
    n = len(k)
    out = np.zeros(ctx.shape(node.shape), dtype=object)
    for idx in np.ndindex(g.shape[g.ndim - 2 * n:]):
        pos, off = idx[:n], idx[n:]
        src = tuple(p * st + o * d for p, o, st, d in zip(pos, off, s, dl))
        out[(Ellipsis,) + src] = out[(Ellipsis,) + src] + g[(Ellipsis,) + idx]
    return out


register(linear(
    "windows_grad", "shape", _grad_infer, helper_call("windows_grad", "shape", "kernel", "stride", "dilation"),
    lambda ctx, node, ct, needs: [B.apply("windows", ct, kernel=node.attr("kernel"), stride=node.attr("stride"),
                                          dilation=node.attr("dilation"))],
    _grad_meaning, doc="the transpose of windows: overlapping windows add up",
    allocates=True, writes_shape=True, helpers=(WINDOWS_GRAD,),
    examples=((("f64[2, 3, 2, 2, 3]",), {"shape": (2, 4, 5), "kernel": (2, 3), "stride": (1, 2),
                                           "dilation": (1, 1)}, {}),),
))
