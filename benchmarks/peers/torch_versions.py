"""PyTorch eager versions of the workloads (autograd, CPU). Optional: see peers/__init__.py."""
try:
    import torch
    import torch.nn.functional as F
    AVAILABLE, WHY = True, ""
except Exception as exc:  # noqa: BLE001 - any import failure means "skip torch"
    torch = F = None
    AVAILABLE, WHY = False, f"{type(exc).__name__}: {exc}"


def setup(threads):
    """Use `threads` intra-op threads (the BLAS thread count of NumPy, for a like-for-like run)."""
    if threads:
        torch.set_num_threads(int(threads))


def describe():
    return f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads"


def _np(t):
    return t.detach().cpu().numpy()


def _convert(res):
    return [_np(r) for r in res]


def _leaf(a):
    return torch.from_numpy(a.copy()).requires_grad_(True)


def _const(a):
    return torch.from_numpy(a.copy())


def w1(inp):
    x = torch.tensor(float(inp["x"]), dtype=torch.float64, requires_grad=True)

    def call():
        y = 5 * x**3 + 2 * x**2 + 4 * x + 8
        (gx,) = torch.autograd.grad(y, x)
        return y, gx

    return call, _convert


def w2(inp):
    x = _leaf(inp["x"])

    def call():
        y = (5 * x**3 + 2 * x**2 + 4 * x + 8).sum()
        (gx,) = torch.autograd.grad(y, x)
        return y, gx

    return call, _convert


def w3(inp):
    x, y = _const(inp["x"]), _const(inp["y"])
    w, b = _leaf(inp["w"]), _leaf(inp["b"])

    def call():
        loss = F.binary_cross_entropy_with_logits(x @ w + b, y)
        gw, gb = torch.autograd.grad(loss, (w, b))
        return loss, gw, gb

    return call, _convert


def w4(inp):
    x, labels = _const(inp["x"]), _const(inp["labels"])
    params = [_leaf(inp[k]) for k in ("w1", "b1", "w2", "b2")]
    w1_, b1, w2_, b2 = params

    def call():
        h = torch.relu(x @ w1_ + b1)
        loss = F.cross_entropy(h @ w2_ + b2, labels)
        return (loss, *torch.autograd.grad(loss, params))

    return call, _convert


def w5(inp):
    a, b, c = _leaf(inp["a"]), _leaf(inp["b"]), _leaf(inp["c"])

    def call():
        y = torch.tanh(a * b + c).sum()
        return (y, *torch.autograd.grad(y, (a, b, c)))

    return call, _convert


def w7(inp):
    X, t, v = _const(inp["X"]), _const(inp["t"]), _const(inp["v"])
    w = _leaf(inp["w"])

    def call():
        loss = F.softplus(-t * (X @ w)).sum()
        (g,) = torch.autograd.grad(loss, w, create_graph=True)
        (hv,) = torch.autograd.grad(g, w, grad_outputs=v)
        return loss, g, hv

    return call, _convert


def w8(inp):
    X, y = _const(inp["X"]), _const(inp["y"])
    ls = _leaf(inp["ls"])
    sf2, sn2 = (torch.tensor(float(inp[k]), dtype=torch.float64, requires_grad=True) for k in ("sf2", "sn2"))
    eye = torch.eye(len(inp["y"]), dtype=torch.float64)

    def call():
        Z = X / ls
        q = (Z * Z).sum(1)
        K = sf2 * torch.exp(-0.5 * (q[:, None] + q[None, :] - 2 * (Z @ Z.T))) + sn2 * eye
        L = torch.linalg.cholesky(K)
        alpha = torch.cholesky_solve(y[:, None], L)[:, 0]
        nll = 0.5 * (y @ alpha) + torch.log(torch.diagonal(L)).sum()
        return (nll, *torch.autograd.grad(nll, (ls, sf2, sn2)))

    return call, _convert


def w9(inp):
    x = _const(inp["x"])
    w = _leaf(inp["w"])

    def call():
        loss = F.relu(F.conv2d(x, w)).mean()
        (gw,) = torch.autograd.grad(loss, w)
        return loss, gw

    return call, _convert


def w10(inp):
    x = _const(inp["x"])
    h0, w, u = _leaf(inp["h0"]), _leaf(inp["w"]), _leaf(inp["u"])

    def call():
        h = h0
        for t in range(x.shape[0]):
            h = torch.tanh(x[t] @ w + h @ u)
        loss = (h * h).mean()
        return (loss, *torch.autograd.grad(loss, (w, u, h0)))

    return call, _convert


def w11(inp):
    y = _const(inp["y"])
    q, k, v = _leaf(inp["q"]), _leaf(inp["k"]), _leaf(inp["v"])

    def call():
        p = torch.softmax(q @ k.transpose(1, 2) / (q.shape[-1] ** 0.5), dim=-1)
        loss = F.mse_loss(p @ v, y)
        return (loss, *torch.autograd.grad(loss, (q, k, v)))

    return call, _convert


def w12(inp):
    x, y = _const(inp["x"]), _const(inp["y"])
    params = [_leaf(inp[k]) for k in ("g", "b", "w1", "b1", "w2", "b2")]
    g, b, w1_, b1, w2_, b2 = params

    def call():
        xn = F.layer_norm(x, (x.shape[-1],), g, b, eps=1e-5)
        h = F.gelu(xn @ w1_ + b1, approximate="tanh")
        loss = F.mse_loss(h @ w2_ + b2, y)
        return (loss, *torch.autograd.grad(loss, params))

    return call, _convert


def w13(inp):
    y = _const(inp["y"])
    x = _leaf(inp["x"])

    def call():
        loss = ((x[1:] - x[:-1]) ** 2).sum() + ((x[:, 1:] - x[:, :-1]) ** 2).sum() + 0.5 * ((x - y) ** 2).sum()
        return (loss, *torch.autograd.grad(loss, x))

    return call, _convert


def w14(inp):
    labels = _const(inp["labels"])
    logits = _leaf(inp["logits"])

    def call():
        loss = F.cross_entropy(logits, labels)
        return (loss, *torch.autograd.grad(loss, logits))

    return call, _convert


BUILDERS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W7": w7, "W8": w8, "W9": w9, "W10": w10,
            "W11": w11, "W12": w12, "W13": w13, "W14": w14}
