"""PyTorch transcriptions of the corpus programs (tests/cases/*.tl and examples/*.tl).

Used only by tests/reference/make_corpus_refs.py, which is run by hand with torch
installed; the tests never import this module (torch is not a dependency of tapeless or
of its test suite). See tests/reference/README.md.

Every function that a `grad` or `vjp` directive of a corpus program differentiates is
written here by hand from its `.tl` source, under the name it has in the source, taking
torch tensors in the `.tl` parameter order (floating ones in their own dtype, integer
ones as integer tensors) and returning a tensor or a tuple as the `.tl` function does.
Helpers a differentiated function calls are transcribed too (calls are inlined in
tapeless; here they are ordinary Python calls).

The transcriptions follow tapeless semantics (docs/language.md), not PyTorch defaults:

* `mean(x)`, `sum(x)`, `max(x)`, `logsumexp(x)` without `axis=` reduce over *all* axes;
* `std`/`var` default to ddof=0 (`correction=0`);
* `max`/`min` reductions share the gradient between ties: `torch.amax`/`torch.amin`
  (not `torch.max(x, dim)`, which sends it to one index);
* `clip` is `torch.clamp` (both pass the gradient at the bounds); `maximum(x, c)` is
  `torch.maximum` with `c` as a 0-d tensor of x's dtype;
* `bce_with_logits`, `binary_cross_entropy`, `cross_entropy` are the `torch.nn.functional`
  losses with `reduction='none'`; `softmax`/`log_softmax` take `dim=` for `axis=`;
* `stop_gradient(x)` is `x.detach()`;
* `take(x, idx, axis=0)` is `torch.index_select`; `concat`/`stack` are `torch.cat`/`torch.stack`;
  `expand_dims(b, 0)` is `b.unsqueeze(0)`; NumPy's negative slice step `a[:, ::-2]`, which
  torch does not support, is `a.flip(1)[:, ::2]` (same elements, same order);
* size symbols are Python ints read from the argument shapes; literals are Python numbers,
  so (as tapeless' weak literals) they never change a tensor's dtype; constructors without
  `dtype=` take the dtype of the array they meet (written explicitly here);
* integer division promotes to f64 in tapeless (NumPy 2); torch would give its default
  float32, so the transcription casts to float64 first (`dtypes.tl`).

Derivative directives are not transcribed one by one: `derivative()` below builds the
torch counterpart of any `grad`/`vjp`/`jvp`/`hvp` function from the directive's metadata
(kind, the function differentiated, its parameters and the `wrt` names), recursively for
grad/vjp, so a directive on a derivative function (`vjp energy_grad wrt w as energy_hvp`)
is the torch double-backward of the torch gradient. A `jvp` is `torch.func.jvp` and an
`hvp` is `torch.autograd.functional.hvp` (plus `torch.autograd.grad` for the gradient),
both of a function of the `wrt` arguments with the others fixed. `EXPLICIT` holds
hand-written versions of such higher-order functions; the recording script uses them and
checks that `derivative()` agrees.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------- tests/cases/attention.tl
def attention(q, k, v):
    T, D = q.shape
    # f32(D): the size symbol cast to f32, then sqrt in f32
    scores = torch.einsum("td,sd->ts", q, k) / torch.sqrt(torch.tensor(D, dtype=torch.float32))
    p = torch.softmax(scores, dim=-1)
    return p @ v


def attention_loss(q, k, v):
    return torch.sum(attention(q, k, v) ** 2)


# ---------------------------------------------------------------- tests/cases/constructors.tl
def ctors(x):
    N = x.shape[0]
    dt = x.dtype  # zeros/ones/full/... without dtype= are weak: they take x's dtype (f32)
    z = torch.zeros((N, 3), dtype=dt) + torch.ones(3, dtype=dt) * 2
    e = torch.eye(3, dtype=torch.float32)
    f = torch.full((N, 1), 0.5, dtype=dt)
    # `x @ e * f` is `(x @ e) * f`: `*` and `@` share a precedence level, left-associative
    return (torch.sum(x * z + (x @ e) * f) + torch.sum(torch.zeros_like(x))
            + torch.sum(N * torch.ones_like(x)))


# ---------------------------------------------------------------- tests/cases/detach.tl
def td_loss(w, x, x_next, r):
    target = r + 0.9 * torch.sum(w * x_next).detach()
    return (torch.sum(w * x) - target) ** 2


# ---------------------------------------------------------------- tests/cases/dtypes.tl
def mixed(a, b, h, k):
    N = a.shape[0]
    c = a * 2 + 1.5                      # f32 (weak literals)
    d = h.to(torch.float32) * c          # f32(h): f16 -> f32
    e = d + b                            # f32 + f64 -> f64
    n = torch.sum(k).to(torch.float64) / N   # tapeless: integers divide to f64
    return torch.sum(e) * n + torch.mean(a)  # f64 + f32 (0-d) -> f64


# ---------------------------------------------------------------- tests/cases/higher_order.tl
def energy(w, a):
    return torch.sum(torch.tanh(a @ w) ** 2) + torch.sum(w ** 4) / 4


def energy_hvp(w, a, ct0, ct1):
    """`vjp energy_grad wrt w as energy_hvp`: the VJP of (w, a) -> (energy, d energy/dw)
    with cotangents (ct0, ct1): ct0 * grad + H @ ct1, written out by hand."""
    value = energy(w, a)
    (g,) = torch.autograd.grad(value, w, create_graph=True)
    (d_w,) = torch.autograd.grad(ct0 * value + torch.sum(ct1 * g), w, create_graph=True)
    return value, g, d_w


# ---------------------------------------------------------------- tests/cases/logistic.tl
def logistic(X, t, w):
    return torch.sum(F.softplus(-t * (X @ w)))


# ---------------------------------------------------------------- tests/cases/losses.tl
def losses(z, p, y):
    a = torch.mean(F.binary_cross_entropy(p, y, reduction="none"))
    b = torch.mean(F.binary_cross_entropy_with_logits(z, y, reduction="none"))
    c = -torch.sum(F.log_softmax(z, dim=1) * y)
    return a + b + c + torch.sum(F.softplus(z)) + torch.sum(torch.sigmoid(z) * y)


# ---------------------------------------------------------------- tests/cases/masked.tl
def safe_sqrt(x):
    return torch.sum(torch.where(x > 0, torch.sqrt(x), 0.0))


def safe_log(x):
    return torch.sum(torch.where(x > 0, torch.log(x), -1.0))


def clipped(x):
    half = torch.tensor(0.5, dtype=x.dtype)
    return torch.sum(torch.sqrt(torch.clamp(x, 0, 4)) + torch.relu(x) * 2 + torch.maximum(x, half))


# ---------------------------------------------------------------- tests/cases/mlp.tl
def mlp(x, labels, w1, b1, w2, b2):
    h = torch.relu(x @ w1 + b1)
    logits = h @ w2 + b2
    return torch.mean(F.cross_entropy(logits, labels, reduction="none"))


# ---------------------------------------------------------------- tests/cases/multi.tl
def polar(x, y):
    r = torch.sqrt(x * x + y * y)
    return r, y / r


def use_polar(x, y):
    r, s = polar(x, y)
    return torch.sum(r * s)


# ---------------------------------------------------------------- tests/cases/names.tl
def lambda_(sum_, np_, type_):  # .tl: fn lambda(sum, np, type)
    class_ = sum_ * np_ + type_
    return torch.amax(class_) + torch.amin(class_)


# ---------------------------------------------------------------- tests/cases/reductions.tl
def stats(x):
    N = x.shape[0]
    m = torch.mean(x, dim=(0, 2), keepdim=True)
    s = torch.std(x, dim=1, correction=0)
    return (torch.sum((x - m) ** 2) / N + torch.sum(s) + torch.sum(torch.amax(x, dim=-1))
            + torch.logsumexp(x, dim=tuple(range(x.ndim))) + torch.sum(torch.prod(x, dim=0)))


# ---------------------------------------------------------------- tests/cases/regression.tl
def regression_predict(x, w, b):
    return x @ w + b


def loss(x, y, w, b, lam):
    r = regression_predict(x, w, b) - y
    r = r * r
    return torch.mean(r) + lam * torch.sum(w ** 2)


# ---------------------------------------------------------------- tests/cases/shapes.tl
def shapes(a, b, idx):
    top = a[1:3]                                   # [2, 6]
    both = torch.cat([top, b], dim=0)              # [4, 6]
    pairs = torch.stack([both, a], dim=0)          # [2, 4, 6]
    flat = torch.reshape(pairs, (-1, 3))           # [16, 3]
    picked = torch.index_select(a, 0, idx)         # take(a, idx, axis=0): [3, 6]
    cols = a.flip(1)[:, ::2].T                     # a[:, ::-2].T: [3, 4]
    return (torch.sum(flat ** 2) + torch.sum(picked * a[0]) + torch.sum(cols @ a[:, :2])
            + a[-1, -1] * torch.sum(b.unsqueeze(0)))


# ---------------------------------------------------------------- examples/detach.tl
def half_detached(x):
    return torch.sum(x * x.detach())


# ---------------------------------------------------------------- examples/layer.tl
def layer(x, y, w, b):
    z = x @ w + b
    return torch.mean(F.binary_cross_entropy_with_logits(z, y, reduction="none"))


# ---------------------------------------------------------------- examples/linear.tl
def linear_predict(x, w, b):
    return x @ w + b


def mse(x, y, w, b):
    err = linear_predict(x, w, b) - y
    return torch.mean(err ** 2)


# ---------------------------------------------------------------- examples/poly.tl
def poly(x):
    return 5 * x ** 3 + 2 * x ** 2 + 4 * x + 8


# ---------------------------------------------------------------- examples/scale.tl
def scale(a):
    return a * 5


# ---------------------------------------------------------------- examples/square.tl
def square(inp):
    return (inp + 1) ** 2


# ---------------------------------------------------------------- tests/cases/softmax_inplace.tl
def heads(x, w, y):
    p = torch.softmax(x @ w, dim=-1)
    lp = torch.log_softmax(2 * (x @ w), dim=-1)
    return torch.sum(p * y) - torch.mean(lp * y)


def probs(x, w):
    return torch.softmax(x @ w, dim=-1)


# ---------------------------------------------------------------- tests/cases/slices.tl
def smooth(x, lam):
    dx = x[1:, :] - x[:-1, :]
    dy = x[:, 1:] - x[:, :-1]
    return torch.sum(dx * dx) + lam * torch.sum(torch.nn.functional.softplus(-torch.abs(dy)))


# ---------------------------------------------------------------- the table
# program (path relative to the repository root) -> {function name in the .tl source: torch function}
PROGRAMS = {
    "tests/cases/attention.tl": {"attention": attention, "attention_loss": attention_loss},
    "tests/cases/constructors.tl": {"ctors": ctors},
    "tests/cases/detach.tl": {"td_loss": td_loss},
    "tests/cases/dtypes.tl": {"mixed": mixed},
    "tests/cases/higher_order.tl": {"energy": energy},
    "tests/cases/logistic.tl": {"logistic": logistic},
    "tests/cases/losses.tl": {"losses": losses},
    "tests/cases/masked.tl": {"safe_sqrt": safe_sqrt, "safe_log": safe_log, "clipped": clipped},
    "tests/cases/mlp.tl": {"mlp": mlp},
    "tests/cases/multi.tl": {"polar": polar, "use_polar": use_polar},
    "tests/cases/names.tl": {"lambda": lambda_},
    "tests/cases/reductions.tl": {"stats": stats},
    "tests/cases/regression.tl": {"predict": regression_predict, "loss": loss},
    "tests/cases/shapes.tl": {"shapes": shapes},
    "tests/cases/softmax_inplace.tl": {"heads": heads, "probs": probs},
    "tests/cases/slices.tl": {"smooth": smooth},
    "examples/detach.tl": {"half_detached": half_detached},
    "examples/layer.tl": {"layer": layer},
    "examples/linear.tl": {"predict": linear_predict, "mse": mse},
    "examples/poly.tl": {"poly": poly},
    "examples/scale.tl": {"scale": scale},
    "examples/square.tl": {"square": square},
}

# Hand-written transcriptions of derivative functions (by generated name); the recording
# script uses these and checks them against `derivative()`.
EXPLICIT = {
    ("tests/cases/higher_order.tl", "energy_hvp"): energy_hvp,
}

# Where PyTorch does not define a derivative that tapeless deliberately defines
# (docs/language.md, "Where PyTorch and JAX return NaN"): (program, function name in the
# source) -> why. Only for these may the recorded PyTorch results contain non-finite
# entries (stored as null); the test then requires tapeless to give exactly 0 there.
TORCH_UNDEFINED = {
    ("tests/cases/masked.tl", "safe_sqrt"):
        "where(x > 0, sqrt(x), 0) at x <= 0: torch multiplies the zero cotangent of the "
        "untaken branch by sqrt'(x) = 1 / (2 sqrt(x)) = NaN and gives NaN; tapeless keeps the "
        "derivative under the mask and gives exactly 0",
}


# ---------------------------------------------------------------- derivative directives
def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def derivative(kind: str, f, params, wrt):
    """The torch counterpart of a `grad`/`vjp`/`jvp`/`hvp` directive on `f`.

    `params` are f's parameter names in order, `wrt` the names differentiated. The result
    takes f's arguments (and, for `vjp`, one cotangent per output of f; for `jvp`/`hvp`, one
    tangent / vector per `wrt` name) and returns `(value, *d_wrt)` for `grad`,
    `(*outputs, *d_wrt)` for `vjp`, `(*outputs, *output_tangents)` for `jvp` and
    `(value, *d_wrt, *hv_wrt)` for `hvp`, as the generated function does. Gradients are
    built with `create_graph=True`, so a grad/vjp result may itself be differentiated (a
    directive on a derivative function); a `wrt` argument that does not reach the outputs
    gets zeros. Cotangents of non-floating outputs are ignored. The `wrt` arguments must be
    tensors that require grad.
    """
    params = list(params)
    idx = [params.index(n) for n in wrt]
    n = len(params)

    def of_wrt(primal):
        """f as a function of the wrt arguments only, the others fixed."""
        def g(*xs):
            a = list(primal)
            for i, x in zip(idx, xs):
                a[i] = x
            return f(*a)
        return g

    if kind == "jvp":
        def jvp_fn(*args):
            primal, tangents = args[:n], args[n:]
            if len(tangents) != len(idx):
                raise TypeError(f"expected {len(idx)} tangents, got {len(tangents)}")
            outs, touts = torch.func.jvp(of_wrt(primal), tuple(primal[i].detach() for i in idx), tuple(tangents))
            outs, touts = _as_tuple(outs), _as_tuple(touts)
            if not all(o.is_floating_point() for o in outs):
                raise TypeError("jvp of a function with a non-floating output is not transcribed")
            return (*outs, *touts)
        return jvp_fn

    if kind == "hvp":
        def hvp_fn(*args):
            primal, vs = args[:n], args[n:]
            if len(vs) != len(idx):
                raise TypeError(f"expected {len(idx)} vectors, got {len(vs)}")
            g = of_wrt(primal)

            def scalar(*xs):
                (value,) = _as_tuple(g(*xs))
                if value.dim() != 0 or not value.is_floating_point():
                    raise TypeError("hvp of a function that does not return one floating scalar")
                return value

            value = scalar(*(primal[i] for i in idx))
            grads = _grad([value], [primal[i] for i in idx], [None])
            _, hv = torch.autograd.functional.hvp(scalar, tuple(primal[i] for i in idx), tuple(vs))
            return (value, *grads, *_as_tuple(hv))
        return hvp_fn

    if kind == "grad":
        def grad_fn(*args):
            if len(args) != n:
                raise TypeError(f"expected {n} arguments, got {len(args)}")
            (value,) = _as_tuple(f(*args))
            if value.dim() != 0 or not value.is_floating_point():
                raise TypeError("grad of a function that does not return one floating scalar")
            grads = _grad([value], [args[i] for i in idx], [None])
            return (value, *grads)
        return grad_fn

    if kind == "vjp":
        def vjp_fn(*args):
            primal, cts = args[:n], args[n:]
            outs = _as_tuple(f(*primal))
            if len(cts) != len(outs):
                raise TypeError(f"expected {len(outs)} cotangents, got {len(cts)}")
            grads = _grad(list(outs), [primal[i] for i in idx], list(cts))
            return (*outs, *grads)
        return vjp_fn

    raise ValueError(f"not a derivative kind: {kind!r}")


def _grad(outputs, inputs, cotangents):
    pairs = [(o, c) for o, c in zip(outputs, cotangents) if o.is_floating_point() and o.requires_grad]
    if not pairs:
        return tuple(torch.zeros_like(x) for x in inputs)
    got = torch.autograd.grad([o for o, _ in pairs], inputs, [c for _, c in pairs],
                              create_graph=True, allow_unused=True)
    return tuple(torch.zeros_like(x) if g is None else g for x, g in zip(inputs, got))
