"""W4 by hand: MLP 784-256-10 with relu and mean cross-entropy (integer labels); grads of all
four parameters.

    h = relu(x @ w1 + b1)                 GEMM, bias and relu in place
    p = h @ w2 + b2                       logits, shifted by their row max in place
    loss = mean(log(sum(exp(p))) - p[label])
    p <- (softmax(p) - onehot) / N        fused, in place: exp, one divide by N * rowsum,
                                          then subtract 1/N at the N label positions
    dw2 = h.T @ p, db2 = sum(p, 0)
    dh = p @ w2.T
    dh *= (h > 0)                         the comparison writes 1.0/0.0 straight into h's buffer
                                          (np.greater(h, 0, out=h): relu'(0) = 0), no bool temporary
    dw1 = x.T @ dh, db1 = sum(dh, 0)
Peak memory: h + dh (N x 256 each), the N x 10 logits, and the returned gradients.
"""
import numpy as np


def mlp_grad(x, labels, w1, b1, w2, b2):
    """(loss, (dw1, db1, dw2, db2))."""
    n = x.shape[0]
    h = x @ w1
    h += b1
    np.maximum(h, h.dtype.type(0), out=h)
    p = h @ w2
    p += b2
    p -= np.max(p, axis=1, keepdims=True)
    rows = np.arange(n)
    picked = float(np.add.reduce(p[rows, labels]))
    np.exp(p, out=p)
    s = np.add.reduce(p, axis=1, keepdims=True)
    loss = (float(np.add.reduce(np.log(s), axis=None)) - picked) / n
    s *= n
    p /= s
    p[rows, labels] -= p.dtype.type(1.0 / n)     # d_logits = (softmax - onehot) / N
    dw2 = h.T @ p
    db2 = np.add.reduce(p, axis=0)
    dh = p @ w2.T
    np.greater(h, 0, out=h)                      # relu mask as 1.0/0.0, in h's buffer (h is done)
    dh *= h
    dw1 = x.T @ dh
    db1 = np.add.reduce(dh, axis=0)
    return p.dtype.type(loss), (dw1, db1, dw2, db2)


def reference(x, labels, w1, b1, w2, b2):
    x, w1, b1, w2, b2 = (a.astype(np.float64) for a in (x, w1, b1, w2, b2))
    n = x.shape[0]
    pre = x @ w1 + b1
    h = np.maximum(pre, 0)
    logits = h @ w2 + b2
    m = logits.max(1, keepdims=True)
    lse = np.log(np.exp(logits - m).sum(1)) + m[:, 0]
    loss = np.mean(lse - logits[np.arange(n), labels])
    d = np.exp(logits - lse[:, None])
    d[np.arange(n), labels] -= 1
    d /= n
    dh = (d @ w2.T) * (pre > 0)
    return loss, (x.T @ dh, dh.sum(0), h.T @ d, d.sum(0))
