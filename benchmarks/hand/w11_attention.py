"""W11 by hand: scaled dot-product attention over a batch of heads, mean squared error;
grads of q, k and v.

    s = q @ k^T                           batched GEMM [B, T, T]
    p = softmax(s / sqrt(D))              in place, one head at a time (256 KiB, in L2):
                                          scaled, shifted by the row max, exp, divided by the row sum
    o = p @ v                             batched GEMM
    r = o - y                             in o's buffer; loss = r.r / n (a BLAS dot)
    do = (2/n) r                          in place
    dv = p^T @ do                         batched GEMM (BLAS reads p transposed)
    dp = do @ v^T                         batched GEMM
    ds = p (dp - rowsum(dp p)) / sqrt(D)  in place in dp's buffer, head by head
    dq = ds @ k, dk = ds^T @ q            batched GEMMs
Peak memory: p and dp (B T T each), o, and the three returned gradients.
"""
import numpy as np


def attention_grad(q, k, v, y):
    """(loss, (dq, dk, dv)) for q, k, v, y [B, T, D] (float32)."""
    B, T, D = q.shape
    f = q.dtype.type
    scale = f(1.0 / np.sqrt(D))
    p = q @ k.transpose(0, 2, 1)
    for h in range(B):                              # one head's scores stay in cache
        ph = p[h]
        ph *= scale
        ph -= np.max(ph, axis=1, keepdims=True)
        np.exp(ph, out=ph)
        ph /= np.add.reduce(ph, axis=1, keepdims=True)
    o = p @ v
    o -= y
    n = o.size
    flat = o.reshape(-1)
    loss = float(np.dot(flat, flat)) / n
    o *= f(2.0 / n)                                 # do
    dv = p.transpose(0, 2, 1) @ o
    dp = o @ v.transpose(0, 2, 1)
    for h in range(B):
        dph, ph = dp[h], p[h]
        r = np.einsum("ij,ij->i", dph, ph)[:, None]  # rowsum(dp p), no [T, T] temporary
        dph -= r
        dph *= ph
        dph *= scale                                # ds
    dq = dp @ k
    dk = dp.transpose(0, 2, 1) @ q
    return f(loss), (dq, dk, dv)


def reference(q, k, v, y):
    q, k, v, y = (a.astype(np.float64) for a in (q, k, v, y))
    d = q.shape[-1]
    s = q @ k.transpose(0, 2, 1) / np.sqrt(d)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    r = p @ v - y
    loss = np.mean(r * r)
    do = 2 * r / r.size
    dp = do @ v.transpose(0, 2, 1)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True)) / np.sqrt(d)
    return loss, (ds @ k, ds.transpose(0, 2, 1) @ q, p.transpose(0, 2, 1) @ do)
