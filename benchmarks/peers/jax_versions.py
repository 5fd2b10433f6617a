"""jax.jit versions of the workloads (CPU). Optional: see peers/__init__.py.

float64 is enabled (jax_enable_x64) so that W1 runs in float64 like the other versions;
the float32 workloads keep float32 arrays (x64 only changes the defaults). Every timed call
ends with block_until_ready(): JAX dispatches asynchronously.
"""
import os

try:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    AVAILABLE, WHY = True, ""
except Exception as exc:  # noqa: BLE001 - any import failure means "skip jax"
    jax = jnp = None
    AVAILABLE, WHY = False, f"{type(exc).__name__}: {exc}"


def setup(threads):
    """XLA's CPU thread pool cannot be resized after start-up; it uses every core."""


def describe():
    dev = jax.devices()[0]
    flags = os.environ.get("XLA_FLAGS", "")
    return f"jax {jax.__version__} ({dev.platform}), XLA CPU thread pool = all cores" + (
        f", XLA_FLAGS={flags}" if flags else "")


def _convert(res):
    value, grads = res
    return [jax.device_get(value)] + [jax.device_get(g) for g in grads]


def _wrap(fn, *args):
    def call():
        return jax.block_until_ready(fn(*args))

    return call, _convert


def w1(inp):
    f = jax.jit(jax.value_and_grad(lambda x: 5 * x**3 + 2 * x**2 + 4 * x + 8, argnums=(0,)))
    return _wrap(f, jnp.asarray(inp["x"], dtype=jnp.float64))


def w2(inp):
    f = jax.jit(jax.value_and_grad(lambda x: jnp.sum(5 * x**3 + 2 * x**2 + 4 * x + 8), argnums=(0,)))
    return _wrap(f, jnp.asarray(inp["x"]))


def _bce_with_logits(z, y):
    return jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))


def w3(inp):
    def layer(x, y, w, b):
        return jnp.mean(_bce_with_logits(x @ w + b, y))

    f = jax.jit(jax.value_and_grad(layer, argnums=(2, 3)))
    return _wrap(f, *(jnp.asarray(inp[k]) for k in ("x", "y", "w", "b")))


def w4(inp):
    def mlp(x, labels, w1, b1, w2, b2):
        h = jax.nn.relu(x @ w1 + b1)
        logp = jax.nn.log_softmax(h @ w2 + b2, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))

    f = jax.jit(jax.value_and_grad(mlp, argnums=(2, 3, 4, 5)))
    return _wrap(f, *(jnp.asarray(inp[k]) for k in ("x", "labels", "w1", "b1", "w2", "b2")))


def w5(inp):
    f = jax.jit(jax.value_and_grad(lambda a, b, c: jnp.sum(jnp.tanh(a * b + c)), argnums=(0, 1, 2)))
    return _wrap(f, *(jnp.asarray(inp[k]) for k in ("a", "b", "c")))


def w7(inp):
    def loss(X, t, w):
        return jnp.sum(jax.nn.softplus(-t * (X @ w)))

    def hvp(X, t, w, v):
        # forward-over-reverse: jvp of (value, grad) gives (value, grad) and (_, H v)
        (value, g), (_, hv) = jax.jvp(lambda w_: jax.value_and_grad(loss, argnums=2)(X, t, w_), (w,), (v,))
        return value, (g, hv)

    f = jax.jit(hvp)
    return _wrap(f, *(jnp.asarray(inp[k]) for k in ("X", "t", "w", "v")))


def w8(inp):
    import jax.scipy.linalg as jsl

    def nll(X, y, ls, sf2, sn2):
        Z = X / ls
        q = jnp.sum(Z * Z, axis=1)
        K = sf2 * jnp.exp(-0.5 * (q[:, None] + q[None, :] - 2 * (Z @ Z.T))) + sn2 * jnp.eye(X.shape[0])
        L = jnp.linalg.cholesky(K)
        alpha = jsl.cho_solve((L, True), y)
        return 0.5 * (y @ alpha) + jnp.sum(jnp.log(jnp.diagonal(L)))

    f = jax.jit(jax.value_and_grad(nll, argnums=(2, 3, 4)))
    return _wrap(f, *(jnp.asarray(inp[k]) for k in ("X", "y", "ls", "sf2", "sn2")))


def w9(inp):
    def conv(x, w):  # jax.lax.conv: NCHW input, OIHW kernel, no padding
        return jnp.mean(jax.nn.relu(jax.lax.conv(x, w, (1, 1), "VALID")))

    f = jax.jit(jax.value_and_grad(conv, argnums=(1,)))
    return _wrap(f, *(jnp.asarray(inp[k]) for k in ("x", "w")))


def w10(inp):
    def rnn(x, h0, w, u):
        def step(h, xt):
            return jnp.tanh(xt @ w + h @ u), None

        h, _ = jax.lax.scan(step, h0, x)
        return jnp.mean(h * h)

    f = jax.jit(jax.value_and_grad(rnn, argnums=(2, 3, 1)))   # grads of w, u, h0, in that order
    return _wrap(f, *(jnp.asarray(inp[k]) for k in ("x", "h0", "w", "u")))


def w11(inp):
    def attention(q, k, v, y):
        p = jax.nn.softmax(q @ jnp.swapaxes(k, 1, 2) / jnp.sqrt(jnp.float32(q.shape[-1])), axis=-1)
        return jnp.mean((p @ v - y) ** 2)

    f = jax.jit(jax.value_and_grad(attention, argnums=(0, 1, 2)))
    return _wrap(f, *(jnp.asarray(inp[k]) for k in ("q", "k", "v", "y")))


def w12(inp):
    def block(x, y, g, b, w1, b1, w2, b2):
        xc = x - jnp.mean(x, axis=-1, keepdims=True)
        xn = xc / jnp.sqrt(jnp.mean(xc * xc, axis=-1, keepdims=True) + 1e-5) * g + b
        h = jax.nn.gelu(xn @ w1 + b1, approximate=True)
        return jnp.mean((h @ w2 + b2 - y) ** 2)

    f = jax.jit(jax.value_and_grad(block, argnums=(2, 3, 4, 5, 6, 7)))
    return _wrap(f, *(jnp.asarray(inp[k]) for k in ("x", "y", "g", "b", "w1", "b1", "w2", "b2")))


def w13(inp):
    def smooth(x, y):
        return (jnp.sum((x[1:] - x[:-1]) ** 2) + jnp.sum((x[:, 1:] - x[:, :-1]) ** 2)
                + 0.5 * jnp.sum((x - y) ** 2))

    f = jax.jit(jax.value_and_grad(smooth, argnums=(0,)))
    return _wrap(f, *(jnp.asarray(inp[k]) for k in ("x", "y")))


def w14(inp):
    def big_ce(logits, labels):
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))

    f = jax.jit(jax.value_and_grad(big_ce, argnums=(0,)))
    return _wrap(f, *(jnp.asarray(inp[k]) for k in ("logits", "labels")))


BUILDERS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W7": w7, "W8": w8, "W9": w9, "W10": w10,
            "W11": w11, "W12": w12, "W13": w13, "W14": w14}
