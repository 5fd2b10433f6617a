"""W10 by hand: an RNN over T steps, mean(h_T^2); grads of w, u and h0.

    h_0 = h0,  h_{t+1} = tanh(x[t] @ w + h_t @ u)   (t = 0 .. T-1)
    loss = mean(h_T * h_T)

Forward: the input projections of every step are ONE GEMM before the loop,
P = x.reshape(T B, D) @ w [T B, H]; then per step one GEMM h_t @ u written straight into
h_{t+1}'s slot of the stacked hidden states hs[T+1, B, H], P[t] added and tanh taken in
place. The backward pass reads hs (tanh' = 1 - h^2, from the outputs).
Backward, in reverse: dpre = dh * (1 - h_{t+1}^2) written over P[t] (dead by then, so P
becomes dPre_all), du += h_t^T @ dpre, dh = dpre @ u^T; after the loop
dw = x.reshape(T B, D)^T @ dPre_all as one GEMM, and dh0 = dh.
Per step: 1 GEMM [B, H] x [H, H] forward, 2 backward; 2 elementwise passes forward (add,
tanh) and 4 backward (h^2, 1 - ., * dh, du +=), all in place; nothing allocated in the loops.
Peak memory: hs and P (T B H floats each, 3.1 MiB), the results and two [H, H] buffers.

`du_after_loop=True` (a second, informational row): du also as one GEMM after the loop,
hs[:T]^T @ dPre_all (the states are stored anyway), instead of T GEMMs [H, B] x [B, H].
"""
import numpy as np


def rnn_grad(x, h0, w, u, du_after_loop=False):
    """(loss, (dw, du, dh0)) for x[T, B, D], h0[B, H], w[D, H], u[H, H] (float32)."""
    T, B, D = x.shape
    H = w.shape[1]
    dt = x.dtype
    x2 = x.reshape(T * B, D)
    P = np.matmul(x2, w).reshape(T, B, H)          # every step's x[t] @ w, one GEMM
    hs = np.empty((T + 1, B, H), dtype=dt)
    hs[0] = h0
    for t in range(T):
        h = hs[t + 1]
        np.matmul(hs[t], u, out=h)
        h += P[t]
        np.tanh(h, out=h)
    hT = hs[T].reshape(-1)
    n = B * H
    loss = dt.type(np.dot(hT, hT) / n)

    dh = np.multiply(hs[T], dt.type(2.0 / n))      # d loss / d h_T
    du = None if du_after_loop else np.zeros((H, H), dtype=dt)
    part = None if du_after_loop else np.empty((H, H), dtype=dt)
    for t in range(T - 1, -1, -1):
        dpre = P[t]                                # P[t] is dead: dPre_all takes its place
        np.multiply(hs[t + 1], hs[t + 1], out=dpre)
        np.subtract(1, dpre, out=dpre)
        dpre *= dh
        if not du_after_loop:
            np.matmul(hs[t].T, dpre, out=part)
            du += part
        np.matmul(dpre, u.T, out=dh)
    dP = P.reshape(T * B, H)
    if du_after_loop:
        du = np.matmul(hs[:T].reshape(T * B, H).T, dP)
    dw = np.matmul(x2.T, dP)                        # one GEMM over every step
    return loss, (dw, du, dh)


def reference(x, h0, w, u):
    """Naive float64: the forward loop keeping the states, the backward loop step by step."""
    x, h0, w, u = (a.astype(np.float64) for a in (x, h0, w, u))
    hs = [h0]
    for t in range(x.shape[0]):
        hs.append(np.tanh(x[t] @ w + hs[-1] @ u))
    h = hs[-1]
    dh = 2 * h / h.size
    dw, du = np.zeros_like(w), np.zeros_like(u)
    for t in reversed(range(x.shape[0])):
        dpre = dh * (1 - hs[t + 1] ** 2)
        dw += x[t].T @ dpre
        du += hs[t].T @ dpre
        dh = dpre @ u.T
    return np.mean(h * h), (dw, du, dh)
