"""W13 by hand: a slicing-heavy objective, finite differences along both axes plus a data term;
gradient of x.

    f(x) = sum((x[1:] - x[:-1])^2) + sum((x[:, 1:] - x[:, :-1])^2) + sum((x - y)^2) / 2
    g = x - y                              the data term's gradient, the returned array (block by
                                           block, one block ahead: a block's d reaches its next row)
    d = x[1:] - x[:-1]                     into a scratch buffer; f += d.d (BLAS dot); d *= 2
    g[1:] += d, g[:-1] -= d                straight into views of g
    e = x[:, 1:] - x[:, :-1]               into the same scratch (as [R, C-1]); likewise
Over blocks of 64 rows (256 KiB of x at C = 1024, so x, g and the scratch stay in L2); a
block's row differences reach one row past it. Peak memory: g and one block's scratch.
"""
import numpy as np

BLOCK_ROWS = 64


def smooth_grad(x, y, block=BLOCK_ROWS):
    """(value, (dx,)) for x, y [R, C] (float32)."""
    R, C = x.shape
    f = x.dtype.type
    g = np.empty_like(x)
    buf = np.empty(min(block, R) * C, dtype=x.dtype)
    total = 0.0

    def data_term(lo, hi):                 # g[lo:hi] = x - y, and its share of the value
        gb = g[lo:hi]
        np.subtract(x[lo:hi], y[lo:hi], out=gb)
        return 0.5 * float(np.dot(gb.reshape(-1), gb.reshape(-1)))

    total += data_term(0, min(block, R))
    for i in range(0, R, block):
        j = min(i + block, R)
        if j < R:                          # the next block's g first: this block's d reaches row j
            total += data_term(j, min(j + block, R))
        # row differences x[r+1] - x[r] for r in [i, min(j, R-1)): they reach row j
        hi = min(j, R - 1)
        if hi > i:
            d = buf[:(hi - i) * C].reshape(hi - i, C)
            np.subtract(x[i + 1:hi + 1], x[i:hi], out=d)
            total += float(np.dot(d.reshape(-1), d.reshape(-1)))
            d *= f(2)
            g[i + 1:hi + 1] += d
            g[i:hi] -= d
        e = buf[:(j - i) * (C - 1)].reshape(j - i, C - 1)
        np.subtract(x[i:j, 1:], x[i:j, :-1], out=e)
        total += float(np.dot(e.reshape(-1), e.reshape(-1)))
        e *= f(2)
        g[i:j, 1:] += e
        g[i:j, :-1] -= e
    return f(total), (g,)


def reference(x, y):
    x, y = x.astype(np.float64), y.astype(np.float64)
    dr = x[1:] - x[:-1]
    dc = x[:, 1:] - x[:, :-1]
    val = (dr * dr).sum() + (dc * dc).sum() + 0.5 * ((x - y) ** 2).sum()
    g = x - y
    g[1:] += 2 * dr
    g[:-1] -= 2 * dr
    g[:, 1:] += 2 * dc
    g[:, :-1] -= 2 * dc
    return val, (g,)
