"""W12 by hand: layer norm (gain g, bias b) then an MLP block with GELU in its tanh form,
mean squared error; grads of g, b, w1, b1, w2, b2.

    xc = x - mean(x)                      per row; rstd = 1 / sqrt(mean(xc^2) + eps)
    xhat = xc rstd (in xc's buffer), xn = xhat g + b
    z = xn @ w1 + b1                      GEMM, bias in place
    t = tanh(c (z + a z^3)), h = z (1 + t) / 2          over 64-row blocks (in L2), scratch reused
    r = h @ w2 + b2 - y                   GEMM, in place; loss = r.r / n (a BLAS dot)
    do = (2/n) r, dw2 = h^T do, db2 = sum(do, 0)
    dh = do @ w2^T                        GEMM written over h's buffer (h is done)
    dz = dh gelu'(z)                      gelu'(z) = (1 + t)/2 + z (1 - t^2) c (1 + 3 a z^2) / 2,
                                          over 64-row blocks, into z's buffer
    dw1 = xn^T dz, db1 = sum(dz, 0), dxn = dz @ w1^T
    dg = sum(dxn xhat, 0) (einsum, no temporary), db = sum(dxn, 0)
Peak memory: xc, xn, dxn (N D each); z, t, h (N H each); the returned gradients.
"""
import numpy as np

EPS = 1e-5
C_GELU = 0.7978845608
A_GELU = 0.044715
BLOCK_ROWS = 64


def block_grad(x, y, g, b, w1, b1, w2, b2, block=BLOCK_ROWS):
    """(loss, (dg, db, dw1, db1, dw2, db2)) for x, y [N, D], w1 [D, H], w2 [H, D] (float32)."""
    n, d = x.shape
    f = x.dtype.type
    xc = x - np.add.reduce(x, axis=1, keepdims=True) / f(d)
    var = np.einsum("ij,ij->i", xc, xc)[:, None]
    var /= f(d)
    var += f(EPS)
    np.sqrt(var, out=var)
    xc /= var                                       # xhat
    xn = xc * g
    xn += b
    z = xn @ w1
    z += b1
    t = np.empty_like(z)
    h = np.empty_like(z)
    rows = min(block, n)
    s = np.empty((rows, z.shape[1]), dtype=z.dtype)
    for i in range(0, n, block):
        zc, tc, hc = z[i:i + block], t[i:i + block], h[i:i + block]
        sc = s[:zc.shape[0]]
        np.multiply(zc, zc, out=sc)
        sc *= f(A_GELU)
        sc += 1
        sc *= zc
        sc *= f(C_GELU)
        np.tanh(sc, out=tc)                         # t
        np.add(tc, 1, out=sc)
        np.multiply(zc, sc, out=hc)
        hc *= f(0.5)                                # h
    r = h @ w2
    r += b2
    r -= y
    m = r.size
    flat = r.reshape(-1)
    loss = float(np.dot(flat, flat)) / m
    r *= f(2.0 / m)                                 # do
    dw2 = h.T @ r
    db2 = np.add.reduce(r, axis=0)
    dh = np.matmul(r, w2.T, out=h)                  # over h (done)
    for i in range(0, n, block):
        zc, tc, dc = z[i:i + block], t[i:i + block], dh[i:i + block]
        sc = s[:zc.shape[0]]
        np.multiply(zc, zc, out=sc)
        sc *= f(3 * A_GELU)
        sc += 1
        sc *= f(C_GELU)                             # c (1 + 3 a z^2)
        sc *= zc
        np.multiply(tc, tc, out=zc)                 # z is read for the last time above
        np.subtract(1, zc, out=zc)
        sc *= zc                                    # z (1 - t^2) c (1 + 3 a z^2)
        sc += tc
        sc += 1
        sc *= f(0.5)                                # gelu'(z)
        np.multiply(dc, sc, out=zc)                 # dz in z's buffer
    dz = z
    dw1 = xn.T @ dz
    db1 = np.add.reduce(dz, axis=0)
    dxn = dz @ w1.T
    dg = np.einsum("ij,ij->j", dxn, xc)
    db = np.add.reduce(dxn, axis=0)
    return f(loss), (dg, db, dw1, db1, dw2, db2)


def reference(x, y, g, b, w1, b1, w2, b2):
    x, y, g, b, w1, b1, w2, b2 = (a.astype(np.float64) for a in (x, y, g, b, w1, b1, w2, b2))
    xc = x - x.mean(1, keepdims=True)
    rstd = 1 / np.sqrt((xc * xc).mean(1, keepdims=True) + EPS)
    xhat = xc * rstd
    xn = xhat * g + b
    z = xn @ w1 + b1
    u = C_GELU * (z + A_GELU * z**3)
    t = np.tanh(u)
    h = 0.5 * z * (1 + t)
    r = h @ w2 + b2 - y
    loss = np.mean(r * r)
    do = 2 * r / r.size
    dh = do @ w2.T
    dz = dh * (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * C_GELU * (1 + 3 * A_GELU * z * z))
    dxn = dz @ w1.T
    return loss, ((dxn * xhat).sum(0), dxn.sum(0), xn.T @ dz, dz.sum(0), h.T @ do, do.sum(0))
