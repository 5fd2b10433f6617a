"""W9 by hand: one conv2d layer (NCHW, stride 1, no padding), relu, mean; grad of w.

    z = conv2d(x, w)                     x[N, C, H, W], w[O, C, KH, KW] -> z[N, O, OH, OW]
    loss = mean(relu(z))
    dz = (z > 0) / z.size
    dw[o, c, k, l] = sum over n, i, j of dz[n, o, i, j] x[n, c, i + k, j + l]

im2col plus two BLAS GEMMs, over blocks of 8 images so that the column matrix of a block
(C KH KW x 8 OH OW: 75 x 6272 floats, 1.8 MiB) stays in cache between the two GEMMs that read
it, and the whole batch's column matrix (15 MiB) is never built:
    cols = windows of the block, copied in (c, k, l, n, i, j) order: the innermost copy runs
           along j, which is contiguous in x (the (n, i, j, c, k, l) order copies runs of 5 and
           measured ~4x slower);
    z = w.reshape(O, C KH KW) @ cols    [O, 8 OH OW], GEMM;
    relu and its sum in place, then the mask (z > 0) written as 1.0/0.0 over z;
    dw += mask @ cols.T                 [O, C KH KW], GEMM (BLAS reads cols transposed);
and dw is scaled by 1 / z.size once at the end (O C KH KW multiplies, not N O OH OW).
Peak memory: one block's cols and z (2.2 MiB) and dw.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

BLOCK_IMAGES = 8


def conv_grad(x, w, block=BLOCK_IMAGES):
    """(loss, (dw,)) for x[N, C, H, W], w[O, C, KH, KW] (float32)."""
    n, c, hgt, wid = x.shape
    o, _, kh, kw = w.shape
    oh, ow = hgt - kh + 1, wid - kw + 1
    ckk, pix = c * kh * kw, oh * ow
    win = sliding_window_view(x, (kh, kw), axis=(2, 3)).transpose(1, 4, 5, 0, 2, 3)  # view [C, KH, KW, N, OH, OW]
    w2 = w.reshape(o, ckk)
    b = min(block, n)
    cols_buf = np.empty(ckk * b * pix, dtype=x.dtype)
    z_buf = np.empty(o * b * pix, dtype=x.dtype)
    dw = np.zeros((o, ckk), dtype=x.dtype)
    part = np.empty((o, ckk), dtype=x.dtype)
    total = 0.0
    for i in range(0, n, b):
        k = min(b, n - i)
        cols = cols_buf[:ckk * k * pix].reshape(c, kh, kw, k, oh, ow)  # contiguous, also for the last block
        np.copyto(cols, win[:, :, :, i:i + k])
        cols = cols.reshape(ckk, k * pix)
        z = z_buf[:o * k * pix].reshape(o, k * pix)
        np.matmul(w2, cols, out=z)
        np.maximum(z, 0, out=z)
        total += float(np.add.reduce(z, axis=None))
        np.greater(z, 0, out=z)                   # relu'(z) as 1.0/0.0 (relu'(0) = 0), in z's buffer
        np.matmul(z, cols.T, out=part)
        dw += part
    scale = 1.0 / (n * o * pix)
    dw *= x.dtype.type(scale)
    return x.dtype.type(total * scale), (dw.reshape(w.shape),)


def reference(x, w):
    x, w = x.astype(np.float64), w.astype(np.float64)
    win = sliding_window_view(x, w.shape[2:], axis=(2, 3))
    z = np.einsum("nchwkl,ockl->nohw", win, w)
    dz = (z > 0) / z.size
    return np.maximum(z, 0).mean(), (np.einsum("nohw,nchwkl->ockl", dz, win),)
