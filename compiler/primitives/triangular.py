"""tril and triu: the lower or upper triangle of the last two axes, the rest zeros (NumPy,
batched over leading axes). Linear: each is its own transpose, so the VJP keeps the same
triangle of the cotangent."""
from __future__ import annotations

import numpy as np

from ..core.diagnostics import UserError
from ..core.primitive import PREC_POSTFIX, Expr, register
from . import algebra as B
from . import axis_maps as AX
from .rule_shapes import linear


def _infer(name):
    def infer(types, attrs):
        t = types[0]
        if t.rank < 2:
            raise UserError(f"`{name}` needs a matrix (rank 2 or more), got {t}")
        return t

    return infer


def _emit(name):
    def emit(ctx, args, node):
        k = node.attr("k")
        return Expr(f"{ctx.xp}.{name}({args[0].text}{f', k={k}' if k else ''})", PREC_POSTFIX)

    return emit


def _meaning(name):
    def meaning(ctx, args, node):
        x = np.asarray(args[0], dtype=object)
        rows, cols = x.shape[-2:]
        i, j = np.indices((rows, cols))
        keep = (j - i <= node.attr("k")) if name == "tril" else (j - i >= node.attr("k"))
        return np.where(keep, x, 0)

    return meaning


for _name in ("tril", "triu"):
    register(linear(
        _name, "linalg", _infer(_name), _emit(_name),
        lambda ctx, node, ct, needs: [B.apply(node.op.name, ct, k=node.attr("k"))], _meaning(_name),
        doc=f"the {'lower' if _name == 'tril' else 'upper'} triangle of the last two axes (diagonal k and "
            f"{'below' if _name == 'tril' else 'above'}), zeros elsewhere; its own transpose",
        examples=((("f64[3, 4]",), {"k": 0}, {}), (("f64[2, 3, 3]",), {"k": -1}, {})), axis_map=AX.last_axes_mixed(2),
    ))
