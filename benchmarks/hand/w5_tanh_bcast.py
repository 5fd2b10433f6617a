"""W5 by hand, single-threaded: sum(tanh(a * b + c)) with a[A,1,K], b[1,J,K], c[K]; grads of
a, b and c.

The broadcast result is A x J x K (2M elements for 256 x 128 x 64, 8 MiB of float32) but it
is never materialised: the loop walks blocks of 8 rows of `a` (8 x 128 x 64 x 4 B = 256 KiB,
in L2), and per block
    t = tanh(a_blk * b + c)               in place in one scratch block; value += sum(t)
    t = 1 - t^2                           in place
    dc += sum over (i, j) of t            (einsum 'ijk->k', a single pass)
    da[blk] = sum_j t[i,j,k] b[j,k]       einsum 'ijk,jk->ik': a multiply-accumulate pass,
    db += sum_i t[i,j,k] a[i,k]           einsum 'ijk,ik->jk'  no temporary
No BLAS is used, so it runs on one thread whatever the BLAS thread count.
Peak memory: one 256 KiB block + the returned gradients.
"""
import concurrent.futures
import os

import numpy as np

BLOCK = 8


def tanh_bcast_grad(a, b, c, block=BLOCK):
    """(value, (da, db, dc)) for a[A,1,K], b[1,J,K], c[K] (float32)."""
    A, _, K = a.shape
    J = b.shape[1]
    b2 = b[0]                                   # [J, K] view
    a2 = a[:, 0]                                # [A, K] view
    da = np.empty((A, K), dtype=a.dtype)
    db = np.zeros((J, K), dtype=b.dtype)
    dc = np.zeros(K, dtype=c.dtype)
    buf = np.empty((min(block, A), J, K), dtype=a.dtype)
    acc_jk = np.empty((J, K), dtype=b.dtype)
    acc_k = np.empty(K, dtype=c.dtype)
    total = 0.0
    for i in range(0, A, block):
        ab = a[i:i + block]                     # [I, 1, K]
        t = buf[:ab.shape[0]]
        np.multiply(ab, b, out=t)
        t += c
        np.tanh(t, out=t)
        total += float(np.add.reduce(t, axis=None))
        np.multiply(t, t, out=t)
        np.subtract(1, t, out=t)                # tanh' = 1 - tanh^2
        np.einsum("ijk->k", t, out=acc_k)
        dc += acc_k
        np.einsum("ijk,jk->ik", t, b2, out=da[i:i + block])
        np.einsum("ijk,ik->jk", t, a2[i:i + block], out=acc_jk)
        db += acc_jk
    return a.dtype.type(total), (da.reshape(a.shape), db.reshape(b.shape), dc)


def tanh_bcast_grad_threads(a, b, c, threads=None, block=BLOCK):
    """tanh_bcast_grad with the rows of `a` split into one part per thread (as many threads as
    tapeless's fused loops use: TAPELESS_THREADS, else the CPU count up to 8), each part blocked
    as above with its own scratch block and partial db, dc; the parts' sums added after. The
    memory W5's tapeless row is measured against (issue 18): its loop runs on threads too, and
    each thread needs its own block."""
    threads = threads or int(os.environ.get("TAPELESS_THREADS", "0")) or min(os.cpu_count() or 1, 8)
    A = a.shape[0]
    step = -(-A // threads)
    step = -(-step // block) * block                # whole blocks per thread
    parts = [(lo, min(lo + step, A)) for lo in range(0, A, step)]
    if len(parts) == 1:
        return tanh_bcast_grad(a, b, c, block)
    if not _POOL:
        _POOL.append(concurrent.futures.ThreadPoolExecutor(threads - 1, "w5-hand"))
    futures = [_POOL[0].submit(tanh_bcast_grad, a[lo:hi], b, c, block) for lo, hi in parts[1:]]
    results = [tanh_bcast_grad(a[parts[0][0]:parts[0][1]], b, c, block)] + [f.result() for f in futures]
    total = sum(float(r[0]) for r in results)
    da = np.concatenate([r[1][0] for r in results])
    db, dc = results[0][1][1], results[0][1][2]
    for r in results[1:]:
        db += r[1][1]
        dc += r[1][2]
    return a.dtype.type(total), (da, db, dc)


_POOL = []


def reference(a, b, c):
    a, b, c = (v.astype(np.float64) for v in (a, b, c))
    t = np.tanh(a * b + c)
    d = 1 - t * t
    return t.sum(), ((d * b).sum(1, keepdims=True), (d * a).sum(0, keepdims=True), d.sum((0, 1)))
