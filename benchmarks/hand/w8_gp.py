"""W8 by hand: a Gaussian process's negative log marginal likelihood (RBF kernel) and its
gradient with respect to the lengthscales ls, the signal variance sf2 and the noise sn2.

    K = sf2 E + sn2 I,  E = exp(-D / 2),  D_ij = |z_i - z_j|^2,  z = x / ls
    nll = 0.5 y^T alpha + sum(log(diag(L))),  L = cholesky(K),  alpha = K^-1 y
    W = d nll / dK = 0.5 (K^-1 - alpha alpha^T)

What scikit-learn's GaussianProcessRegressor does for the same gradient: K^-1 as
scipy.linalg.cho_solve(L, I) (two triangular solves with n right-hand sides). Then
sn2-bar = trace W, sf2-bar = sum(W * E), and with D-bar = -sf2/2 W * E, through
D = q_i + q_j - 2 z_i.z_j: z-bar = 4 (rowsum(D-bar) z - D-bar z), ls-bar = -sum(z-bar z) / ls
(one matrix product for all lengthscales, none per dimension).
`potri` is the same with LAPACK's dpotri for K^-1 (from the factor, in place): fewer flops,
rarer in practice (GPy uses it), shown for information.
Returns (value, (ls-bar, sf2-bar, sn2-bar)).
"""
import numpy as np
import scipy.linalg


def _kernel(X, ls, sf2, sn2):
    Z = X / ls
    q = np.einsum("ij,ij->i", Z, Z)
    D = Z @ Z.T
    D *= -2
    D += q[:, None]
    D += q[None, :]
    D *= -0.5
    E = np.exp(D, out=D)                       # E = exp(-D / 2), in place
    K = sf2 * E
    K.flat[::K.shape[0] + 1] += sn2
    return Z, E, K


def _grads(Z, E, W, ls, sf2):
    dsn2 = np.trace(W)
    W *= E
    dsf2 = W.sum()
    W *= -0.5 * sf2                            # D-bar (symmetric)
    Zbar = W @ Z
    Zbar *= -4
    Zbar += 4 * W.sum(axis=1)[:, None] * Z
    dls = -np.einsum("ij,ij->j", Zbar, Z) / ls
    return dls, dsf2, dsn2


def gp_nll_grad(X, y, ls, sf2, sn2):
    Z, E, K = _kernel(X, ls, sf2, sn2)
    L = np.linalg.cholesky(K)
    alpha = scipy.linalg.cho_solve((L, True), y)
    value = 0.5 * (y @ alpha) + np.log(np.diagonal(L)).sum()
    W = scipy.linalg.cho_solve((L, True), np.eye(len(y)))
    W -= np.outer(alpha, alpha)
    W *= 0.5
    return value, _grads(Z, E, W, ls, sf2)


def gp_nll_grad_potri(X, y, ls, sf2, sn2):
    Z, E, K = _kernel(X, ls, sf2, sn2)
    L = np.linalg.cholesky(K)
    alpha = scipy.linalg.cho_solve((L, True), y)
    value = 0.5 * (y @ alpha) + np.log(np.diagonal(L)).sum()
    W, info = scipy.linalg.lapack.dpotri(L, lower=1)
    W = np.tril(W) + np.tril(W, -1).T          # dpotri fills the lower triangle
    W -= np.outer(alpha, alpha)
    W *= 0.5
    return value, _grads(Z, E, W, ls, sf2)


def reference(X, y, ls, sf2, sn2):
    """Naive float64: explicit inverse, one kernel derivative per lengthscale."""
    diff2 = (X[:, None, :] - X[None, :, :]) ** 2
    E = np.exp(-0.5 * np.sum(diff2 / ls ** 2, axis=2))
    K = sf2 * E + sn2 * np.eye(len(y))
    Kinv = np.linalg.inv(K)
    alpha = Kinv @ y
    value = 0.5 * y @ alpha + 0.5 * np.linalg.slogdet(K)[1]
    W = 0.5 * (Kinv - np.outer(alpha, alpha))
    dls = np.array([np.sum(W * sf2 * E * diff2[:, :, d] / ls[d] ** 3) for d in range(len(ls))])
    return value, (dls, np.sum(W * E), np.trace(W))
