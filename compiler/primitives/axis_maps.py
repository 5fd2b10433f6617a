"""The shared forms of the `axis_map` facet (core/primitive.py): where each input axis of a
node runs in its result.

A map gives, for each input, one entry per axis of that input:

    j >= 0   the axis runs along output axis j, element for element: element k of the input
             axis feeds only element k of the output axis (an elementwise op, a reduction over
             another axis, a matrix product's row axis)
    j < 0    a label: the axis is reduced away (summed where the op is linear in that input,
             else a max, a product, a logsumexp); one label in two inputs is one contracted
             index (matmul's inner axis), two labels two separate sums
    None     none of these: its elements meet each other (softmax's axis, a cumsum), move
             (a roll, a reversal, a reshape across it) or are picked (x[0], take along it)

What reads it: autodiff/batch.py, which follows an axis of examples through a function to
decide whether the value is a sum over the examples (data-parallel gradients). Elementwise
ops have theirs by broadcasting (core/primitive.broadcast_axes); every other record a user's
program can reach names one of the forms here (einsum's is in linalg.py, beside its spec
parser). A record without one is treated as mixing every axis (the analysis then reports it as
coupling the examples).
"""
from __future__ import annotations

from ..core.types import dim_prod


def _axis(a: int, rank: int) -> int:
    return a % rank if rank else 0


def identity(node) -> tuple:
    """Every axis of every input runs along the same axis of the result (stop_gradient)."""
    return tuple(tuple(range(i.type.rank)) for i in node.inputs)


def reduced(node) -> tuple:
    """A reduction of input 0 over attribute `axes` (keepdims or not)."""
    x = node.inputs[0]
    axes = {_axis(a, x.type.rank) for a in node.attr("axes")}
    keep = node.attr("keepdims")
    out, j = [], 0
    for a in range(x.type.rank):
        if a in axes:
            out.append(-1 - a)
            j += bool(keep)
        else:
            out.append(j)
            j += 1
    return (tuple(out),) + tuple(() for _ in node.inputs[1:])


def along(node) -> tuple:
    """An op along attribute `axis` (softmax, a cumsum or linscan, a roll, argmax), which keeps
    or drops that axis: it mixes in every input, the other axes run on."""
    rank = node.inputs[0].type.rank
    axis = _axis(node.attr("axis"), rank)
    dropped = node.type.rank < rank
    one = tuple(None if a == axis else (a - (dropped and a > axis)) for a in range(rank))
    return tuple(one for _ in node.inputs)


def matmul(node) -> tuple:
    """numpy.matmul: batch axes broadcast from the right, rows and columns kept, the inner axis
    one contracted label; a 1-D operand has the inner axis only."""
    a, b = node.inputs
    ra, rb = a.type.rank, b.type.rank
    batch = node.type.rank - (ra > 1) - (rb > 1)
    inner = -1
    if ra == 1:
        ma = (inner,)
    else:
        ma = tuple(batch - (ra - 2) + k for k in range(ra - 2)) + (batch, inner)
    if rb == 1:
        mb = (inner,)
    else:
        mb = tuple(batch - (rb - 2) + k for k in range(rb - 2)) + (inner, batch + (ra > 1))
    return ma, mb


def transpose(node) -> tuple:
    perm = node.attr("perm")
    out = [0] * len(perm)
    for j, p in enumerate(perm):
        out[p] = j
    return (tuple(out),)


def reshape(node) -> tuple:
    """An axis survives a reshape where the elements before it and after it are as many in the
    result as in the input and its size is kept: [N, 3, 4] -> [N, 12] keeps N; [N, 3] -> [3N] not."""
    src, dst = node.inputs[0].shape, node.shape
    out = []
    for a, d in enumerate(src):
        before, after = dim_prod(src[:a]), dim_prod(src[a + 1:])
        out.append(next((b for b, e in enumerate(dst) if e == d and dim_prod(dst[:b]) == before
                         and dim_prod(dst[b + 1:]) == after), None))
    return (tuple(out),)


def squeeze(node) -> tuple:
    x = node.inputs[0]
    gone = {_axis(a, x.type.rank) for a in node.attr("axes")}
    out, j = [], 0
    for a in range(x.type.rank):
        if a in gone:
            out.append(None)  # (a size-1 axis: nothing runs along it)
        else:
            out.append(j)
            j += 1
    return (tuple(out),)


def expand_dims(node) -> tuple:
    r = node.type.rank
    new = {_axis(a, r) for a in node.attr("axes")}
    return (tuple(j for j in range(r) if j not in new),)


def index(node) -> tuple:
    """Static indexing: an axis taken whole by `:` runs on; an integer picks one element of it
    and any other slice moves or drops elements (x[1:], x[::-1]): both mix."""
    x = node.inputs[0]
    out, a, j = [], 0, 0
    for item in node.attr("items"):
        if item[0] == "n":
            j += 1
            continue
        if item[0] == "i":
            out.append(None)
        else:
            _, start, stop, step = item
            whole = start in (None, 0) and (stop is None or stop == x.shape[a]) and step == 1
            out.append(j if whole else None)
            j += 1
        a += 1
    out += [j + k for k in range(x.type.rank - a)]
    return (tuple(out),)


def concat(node) -> tuple:
    """Along attribute `axis` the inputs are laid end to end (that axis mixes); the others run on."""
    r = node.type.rank
    axis = _axis(node.attr("axis"), r)
    return tuple(tuple(None if a == axis else a for a in range(r)) for _ in node.inputs)


def take(node) -> tuple:
    """numpy.take(x, idx, axis): x's axis is gathered from (mixes); idx's axes run in its place."""
    x, idx = node.inputs
    axis = _axis(node.attr("axis"), x.type.rank)
    shift = idx.type.rank - 1
    mx = tuple(a if a < axis else (None if a == axis else a + shift) for a in range(x.type.rank))
    return mx, tuple(axis + k for k in range(idx.type.rank))


def take_along_axis(node) -> tuple:
    """x's axis is gathered from (mixes); idx runs along the result, that axis too."""
    x, idx = node.inputs
    axis = _axis(node.attr("axis"), x.type.rank)
    return tuple(None if a == axis else a for a in range(x.type.rank)), tuple(range(idx.type.rank))


def last_axes_mixed(n: int):
    """An op on the last n axes of input 0 by position (tril, triu: element (i, j) is kept by its
    place): those mix, the leading ones run on."""
    def axis_map(node) -> tuple:
        r = node.inputs[0].type.rank
        return (tuple(a if a < r - n else None for a in range(r)),)

    return axis_map


def diagonal(node) -> tuple:
    """numpy.diagonal(x): axes 0 and 1 become the last axis (they mix); the others move forward."""
    r = node.inputs[0].type.rank
    return ((None, None) + tuple(range(r - 2)),)


def stacked(*cores):
    """numpy.linalg on stacks: input i's last cores[i] axes are its matrix or vector (they mix,
    as in a solve); its leading axes broadcast from the right over the result's leading ones.
    A core given as None is 1 for a 1-D input and 2 otherwise (solve's right-hand side)."""
    def axis_map(node) -> tuple:
        ranks = [i.type.rank for i in node.inputs]
        core = [(1 if r == 1 else 2) if c is None else c for c, r in zip(cores, ranks)]
        lead = max(r - c for r, c in zip(ranks, core))
        return tuple(tuple((lead - (r - c) + a) if a < r - c else None for a in range(r))
                     for r, c in zip(ranks, core))

    return axis_map


def windows(node) -> tuple:
    """Sliding windows over the last len(kernel) axes (they mix); the leading ones run on."""
    r = node.inputs[0].type.rank
    n = len(node.attr("kernel"))
    return (tuple(a if a < r - n else None for a in range(r)),)


def conv(node) -> tuple:
    """conv(x [N, C, in...], w [O, C / groups, k...]) -> [N, O, out...]: images run along axis 0,
    C is contracted with w's axis 1 (one label; with groups, channels mix), windows mix."""
    x, w = node.inputs
    n = x.type.rank - 2
    channel = -1 if node.attr("groups") in (None, 1) else None
    return (0, channel) + (None,) * n, (1, channel) + (None,) * n


def labels_last(node) -> tuple:
    """An op over the class axis of input 0 ([..., C]) with integer labels [...] (cross_entropy,
    pick_label): the class axis mixes; the rows run on, in both; a third input broadcasts."""
    z = node.inputs[0]
    rows = tuple(range(z.type.rank - 1))
    # (sub_label keeps the class axis, element for element; pick_label's [..., 1] does not)
    kept = node.type.rank == z.type.rank and node.shape[-1] == z.shape[-1]
    r = node.type.rank
    rest = tuple(tuple(range(r - i.type.rank, r)) for i in node.inputs[2:])
    return (rows + (z.type.rank - 1 if kept else None,), rows) + rest


def onehot(node) -> tuple:
    """Labels [...] -> rows [..., depth]: each label runs along its row."""
    return (tuple(range(node.inputs[0].type.rank)),)
