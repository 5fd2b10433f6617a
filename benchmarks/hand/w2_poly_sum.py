"""W2 by hand: sum(5x^3 + 2x^2 + 4x + 8) over a large float32 vector, and its gradient.

Cache-blocked and single-threaded: the vector is walked in 64K-element chunks (256 KiB of
float32, well inside L2), each chunk evaluated in Horner form with in-place ufuncs on one
scratch buffer (value) and directly in the output gradient (15x^2 + 4x + 4), so every pass
after the first read of a chunk hits cache and nothing of size N is allocated except the
gradient that is returned. Chunk sums are accumulated in float64; the constant term is
added once as 8 N.
"""
import numpy as np

CHUNK = 1 << 16


def poly_sum_grad(x, chunk=CHUNK):
    """(value: float32, (d_x: float32[N],)) for a 1-D float32 array x."""
    n = x.shape[0]
    g = np.empty_like(x)
    buf = np.empty(min(chunk, n), dtype=x.dtype)
    total = 0.0
    for i in range(0, n, chunk):
        xc = x[i:i + chunk]
        gc = g[i:i + chunk]
        t = buf[:xc.shape[0]]
        # value without the constant: ((5x + 2) x + 4) x
        np.multiply(xc, 5, out=t)
        t += 2
        t *= xc
        t += 4
        t *= xc
        total += float(np.add.reduce(t))
        # gradient: (15x + 4) x + 4, written straight into the result
        np.multiply(xc, 15, out=gc)
        gc += 4
        gc *= xc
        gc += 4
    return np.float32(total + 8.0 * n), (g,)


def reference(x):
    x = x.astype(np.float64)
    return np.sum(5 * x**3 + 2 * x**2 + 4 * x + 8), (15 * x**2 + 4 * x + 4,)
