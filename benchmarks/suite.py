"""The workloads W1..W10: inputs, implementations, references, tolerances and targets.

Every workload is built by a function of the same name (w1 ... w7, except W6, which times the
compiler and is measured by run.py through w6_probe.py). A builder returns a Workload whose
`impls` are, in order: the hand-written NumPy version (hand/), the tapeless version compiled
from workloads/*.tl (plus secondary tapeless rows, e.g. with argument checks off), then the
peers (peers/) that are importable. `reference` is the naive float64 result of hand/*.reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import Impl
from hand import w1_poly_scalar, w2_poly_sum, w3_layer, w4_mlp, w5_tanh_bcast, w7_logistic_hvp, w8_gp, w9_conv, w10_rnn

HERE = Path(__file__).resolve().parent
TL = HERE / "workloads"
F32 = np.float32

# Targets of the issue ("tapeless time / hand time <= target"); memory: every gradient call.
TARGETS = {"W1": 3.0, "W1-nochecks": 1.5, "W2": 1.1, "W3": 0.85, "W4": 1.0, "W5": 0.75, "W7": 1.2, "W8": 1.0, "W9": 1.0, "W10": 1.1}
MEM_TARGET = 1.1
W6_COMPILE_TARGET = 0.3      # seconds, strictly below
W6_CACHED_TARGET = 0.020     # seconds, strictly below
COMPILE_TIMED = {"W10": "w10_rnn.tl"}   # also timed as W6 times W4's file (a loop: issue 17)


@dataclass
class Workload:
    key: str
    title: str
    detail: str
    reference: list
    dtypes: list
    impls: list = field(default_factory=list)
    primary: str = "tapeless"            # the tapeless row the ratios and targets use
    targets: dict = field(default_factory=dict)   # impl name -> time-ratio target vs hand
    rtol: float = 1e-4
    atol_frac: float = 1e-5
    notes: list = field(default_factory=list)
    inputs: dict = field(default_factory=dict)    # the NumPy inputs, by name, for the peers


class Context:
    """What builders share: the tapeless loader (with compile errors turned into notes) and
    the peer modules to build versions for (run.py builds peers only in a child process of
    their own, where tapeless is not wanted: with_tapeless=False)."""

    def __init__(self, peers: dict | None = None, with_tapeless: bool = True):
        self.peers = peers or {}           # display name -> module (torch_versions, jax_versions)
        self.with_tapeless = with_tapeless
        self.problems = []                 # compiler problems met, for the final report

    def load(self, name: str, checks: bool = True, opt_level: int = 1, backend: str = "numpy"):
        """The module compiled from workloads/NAME, or (None, message) on a compile error."""
        from tapeless.compiler import CompileError
        from tapeless.runtime import load

        try:
            return load(TL / name, backend=backend, checks=checks, opt_level=opt_level), ""
        except CompileError as exc:
            return None, str(exc).strip()


def _flat(result):
    """(value, (g1, g2), (h1,)) -> [value, g1, g2, h1]"""
    out = [result[0]]
    for group in result[1:]:
        out.extend(group)
    return out


def _tapeless_convert(result):
    return list(result)


def _add_tapeless(ctx, wl, tl_file, entry, args, extra_rows=(("tapeless (checks off)", False),)):
    if not ctx.with_tapeless:
        return
    m, err = ctx.load(tl_file)
    if m is None:
        wl.notes.append(f"tapeless: {tl_file} does not compile:\n{err}")
        ctx.problems.append((wl.key, f"{tl_file} does not compile", err))
    else:
        fn = getattr(m, entry)
        wl.impls.append(Impl("tapeless", "tapeless", lambda: fn(*args), _tapeless_convert))
    for name, checks in extra_rows:
        m2, err = ctx.load(tl_file, checks=checks)
        if m2 is not None:
            fn2 = getattr(m2, entry)
            wl.impls.append(Impl(name, "tapeless-alt", lambda fn2=fn2: fn2(*args), _tapeless_convert))
    _add_numba(ctx, wl, tl_file, entry, args)


def _add_numba(ctx, wl, tl_file, entry, args):
    """The `tapeless numba` row (--backend numba), when numba is installed: its JIT warmed by one
    call here, before anything is timed."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return
    m, err = ctx.load(tl_file, backend="numba")
    if m is None:
        wl.notes.append(f"tapeless numba: {tl_file} does not compile:\n{err}")
        return
    fn = getattr(m, entry)
    fn(*args)  # (the JIT, or numba's on-disk cache, before timing)
    wl.impls.append(Impl("tapeless numba", "tapeless-alt", lambda: fn(*args), _tapeless_convert))


def _add_peers(ctx, wl, inputs):
    wl.inputs = inputs
    for name, mod in ctx.peers.items():
        builder = mod.BUILDERS.get(wl.key)
        if builder is None:
            continue
        try:
            call, conv = builder(inputs)
        except Exception as exc:  # noqa: BLE001 - a peer failing to build is a note, not fatal
            wl.notes.append(f"{name}: could not build ({type(exc).__name__}: {exc})")
            continue
        wl.impls.append(Impl(name, "peer", call, conv, memory=False))


# ---------------------------------------------------------------------------------- W1

def w1(ctx):
    x = np.float64(1.3)
    wl = Workload("W1", "scalar 5x^3+2x^2+4x+8: value and gradient, per-call latency", "x: f64 scalar",
                  _flat(w1_poly_scalar.reference(x)), ["float64", "float64"], rtol=1e-12, atol_frac=1e-14)
    wl.impls.append(Impl("hand (NumPy f64 scalar)", "hand", lambda: w1_poly_scalar.poly_grad(x), _flat))
    _add_tapeless(ctx, wl, "w1_poly_scalar.tl", "poly_grad", (x,))
    wl.targets = {"tapeless": TARGETS["W1"], "tapeless (checks off)": TARGETS["W1-nochecks"]}
    wl.notes.append("W1's peak memory is a few NumPy scalar and tuple objects (bytes, not arrays): "
                    "its ratio says little")
    _add_peers(ctx, wl, {"x": x})
    return wl


# ---------------------------------------------------------------------------------- W2

def w2(ctx):
    n = 10**7
    x = np.random.default_rng(2).uniform(-1, 1, n).astype(F32)
    wl = Workload("W2", "sum of 5x^3+2x^2+4x+8 over 10^7 elements: value and gradient", "x: f32[10^7]",
                  _flat(w2_poly_sum.reference(x)), ["float32", "float32"], rtol=1e-5, atol_frac=1e-6)
    wl.impls.append(Impl("hand (64K chunks, 1 thread)", "hand", lambda: w2_poly_sum.poly_sum_grad(x), _flat))
    _add_tapeless(ctx, wl, "w2_poly_sum.tl", "poly_sum_grad", (x,))
    wl.targets = {"tapeless": TARGETS["W2"]}
    _add_peers(ctx, wl, {"x": x})
    return wl


# ---------------------------------------------------------------------------------- W3

def w3(ctx):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1024, 784)).astype(F32)
    w = (rng.standard_normal((784, 256)) / 28).astype(F32)       # logits ~ N(0, 1)
    b = (0.1 * rng.standard_normal(256)).astype(F32)
    y = (rng.random((1024, 256)) < 0.5).astype(F32)
    args = (x, y, w, b)
    wl = Workload("W3", "one layer mean(bce_with_logits(x @ w + b, y)): grads of w, b",
                  "x f32[1024,784], y f32[1024,256], w f32[784,256], b f32[256]",
                  _flat(w3_layer.reference(*args)), ["float32"] * 3)
    wl.impls.append(Impl("hand (NumPy, in place)", "hand", lambda: w3_layer.layer_grad(*args), _flat))
    _add_tapeless(ctx, wl, "w3_layer.tl", "layer_grad", args)
    wl.targets = {"tapeless": TARGETS["W3"]}
    _add_peers(ctx, wl, dict(x=x, y=y, w=w, b=b))
    return wl


# ---------------------------------------------------------------------------------- W4

def w4(ctx):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((512, 784)).astype(F32)
    labels = rng.integers(0, 10, 512).astype(np.int64)
    w1_ = (rng.standard_normal((784, 256)) / 28).astype(F32)
    b1 = (0.1 * rng.standard_normal(256)).astype(F32)
    w2_ = (rng.standard_normal((256, 10)) / 16).astype(F32)
    b2 = (0.1 * rng.standard_normal(10)).astype(F32)
    args = (x, labels, w1_, b1, w2_, b2)
    wl = Workload("W4", "MLP 784-256-10, relu, mean cross_entropy: grads of w1, b1, w2, b2",
                  "batch 512, x f32[512,784], labels i64[512]",
                  _flat(w4_mlp.reference(*args)), ["float32"] * 5)
    wl.impls.append(Impl("hand (NumPy, in place)", "hand", lambda: w4_mlp.mlp_grad(*args), _flat))
    _add_tapeless(ctx, wl, "w4_mlp.tl", "mlp_grad", args)
    wl.targets = {"tapeless": TARGETS["W4"]}
    _add_peers(ctx, wl, dict(x=x, labels=labels, w1=w1_, b1=b1, w2=w2_, b2=b2))
    return wl


# ---------------------------------------------------------------------------------- W5

def w5(ctx):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((256, 1, 64)).astype(F32)
    b = rng.standard_normal((1, 128, 64)).astype(F32)
    c = rng.standard_normal(64).astype(F32)
    args = (a, b, c)
    wl = Workload("W5", "sum(tanh(a * b + c)): grads of a, b, c",
                  "a f32[256,1,64], b f32[1,128,64], c f32[64]",
                  _flat(w5_tanh_bcast.reference(*args)), ["float32"] * 4)
    wl.impls.append(Impl("hand (blocked, 1 thread)", "hand", lambda: w5_tanh_bcast.tanh_bcast_grad(*args), _flat))
    _add_tapeless(ctx, wl, "w5_tanh_bcast.tl", "tanh_bcast_grad", args)
    wl.targets = {"tapeless": TARGETS["W5"]}
    _add_peers(ctx, wl, dict(a=a, b=b, c=c))
    return wl


# ---------------------------------------------------------------------------------- W7

HVP_DIRECTIVE_FILE = "w7_logistic_hvp_directive.tl"   # `hvp logistic wrt w` -> logistic_hvp
HVP_VJP_FILE = "w7_logistic_hvp.tl"                   # `vjp logistic_grad wrt w` -> logistic_grad_vjp


def w7(ctx):
    rng = np.random.default_rng(7)
    X = (rng.standard_normal((2048, 512)) / np.sqrt(512)).astype(F32)
    t = np.where(rng.random(2048) < 0.5, -1.0, 1.0).astype(F32)
    w = rng.standard_normal(512).astype(F32)
    v = rng.standard_normal(512).astype(F32)
    wl = Workload("W7", "Hessian-vector product of sum(softplus(-t * (X @ w))): value, grad, Hv",
                  "X f32[2048,512], t f32[2048] (+-1), w f32[512], v f32[512]",
                  _flat(w7_logistic_hvp.reference(X, t, w, v)), ["float32"] * 3)
    wl.impls.append(Impl("hand (closed form, 4 gemv)", "hand",
                         lambda: w7_logistic_hvp.logistic_hvp(X, t, w, v), _flat))

    if ctx.with_tapeless:
        _add_tapeless_w7(ctx, wl, X, t, w, v)
    wl.targets = {"tapeless": TARGETS["W7"]}
    _add_peers(ctx, wl, dict(X=X, t=t, w=w, v=v))
    return wl


def _add_tapeless_w7(ctx, wl, X, t, w, v):
    """The `hvp` directive when the compiler supports it; until then the VJP of the gradient,
    logistic_grad_vjp(X, t, w, ct0=0, ct1=v) -> (value, grad, H v). Both return
    (value, grad, Hv), so they share the checks and the table."""
    zero = F32(0.0)
    m, err = ctx.load(HVP_DIRECTIVE_FILE)
    if m is not None:
        wl.notes.append("tapeless: using the `hvp` directive (logistic_hvp); "
                        "the vjp-of-grad route is the secondary row")
        wl.impls.append(Impl("tapeless", "tapeless", lambda: m.logistic_hvp(X, t, w, v), _tapeless_convert))
        m_off, _ = ctx.load(HVP_DIRECTIVE_FILE, checks=False)
        if m_off is not None:
            wl.impls.append(Impl("tapeless (checks off)", "tapeless-alt",
                                 lambda: m_off.logistic_hvp(X, t, w, v), _tapeless_convert))
        vjp_rows = (("tapeless (vjp of grad)", "tapeless-alt", True),)
    else:
        first = err.splitlines()[0] if err else "unknown error"
        if "not supported" in err:
            wl.notes.append(f"hvp directive not available (compiler: {first.split('error: ', 1)[-1]}); "
                            "tapeless HVP computed as the vjp of logistic_grad with cotangents (0, v)")
        else:
            wl.notes.append(f"hvp directive failed to compile, unexpectedly:\n{err}")
            ctx.problems.append(("W7", f"{HVP_DIRECTIVE_FILE} does not compile", err))
        vjp_rows = (("tapeless", "tapeless", True), ("tapeless (checks off)", "tapeless-alt", False))
    for name, kind, checks in vjp_rows:
        m2, err2 = ctx.load(HVP_VJP_FILE, checks=checks)
        if m2 is None:
            if checks:
                wl.notes.append(f"tapeless: {HVP_VJP_FILE} does not compile:\n{err2}")
                ctx.problems.append(("W7", f"{HVP_VJP_FILE} does not compile", err2))
            continue
        fn2 = m2.logistic_grad_vjp
        wl.impls.append(Impl(name, kind, lambda fn2=fn2: fn2(X, t, w, zero, v), _tapeless_convert))
    if m is not None:
        _add_numba(ctx, wl, HVP_DIRECTIVE_FILE, "logistic_hvp", (X, t, w, v))
    else:
        _add_numba(ctx, wl, HVP_VJP_FILE, "logistic_grad_vjp", (X, t, w, zero, v))


# ---------------------------------------------------------------------------------- W8

def w8(ctx):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((2000, 8))
    y = rng.standard_normal(2000)
    ls = rng.uniform(1.5, 3.0, 8)
    sf2, sn2 = np.float64(1.3), np.float64(0.1)
    args = (X, y, ls, sf2, sn2)
    wl = Workload("W8", "Gaussian-process NLL, RBF kernel: grads of lengthscales, signal and noise variance",
                  "X f64[2000,8], y f64[2000], ls f64[8], sf2, sn2 f64",
                  _flat(w8_gp.reference(*args)), ["float64"] * 4, rtol=1e-8, atol_frac=1e-10)
    wl.impls.append(Impl("hand (NumPy + SciPy cho_solve, as scikit-learn)", "hand",
                         lambda: w8_gp.gp_nll_grad(*args), _flat))
    wl.impls.append(Impl("hand (LAPACK dpotri, as GPy)", "hand-alt", lambda: w8_gp.gp_nll_grad_potri(*args), _flat))
    _add_tapeless(ctx, wl, "w8_gp.tl", "gp_nll_grad", args)
    wl.targets = {"tapeless": TARGETS["W8"]}
    _add_peers(ctx, wl, dict(X=X, y=y, ls=ls, sf2=sf2, sn2=sn2))
    return wl


# ---------------------------------------------------------------------------------- W9

def w9(ctx):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((64, 3, 32, 32)).astype(F32)
    w = (rng.standard_normal((16, 3, 5, 5)) / np.sqrt(75)).astype(F32)   # conv outputs ~ N(0, 1)
    wl = Workload("W9", "conv2d layer mean(relu(conv2d(x, w))), stride 1, no padding: grad of w",
                  "x f32[64,3,32,32], w f32[16,3,5,5]",
                  _flat(w9_conv.reference(x, w)), ["float32"] * 2)
    wl.impls.append(Impl("hand (blocked im2col, GEMMs)", "hand", lambda: w9_conv.conv_grad(x, w), _flat))
    _add_tapeless(ctx, wl, "w9_conv.tl", "conv_grad", (x, w))
    wl.targets = {"tapeless": TARGETS["W9"]}
    _add_peers(ctx, wl, dict(x=x, w=w))
    return wl


# ---------------------------------------------------------------------------------- W10

def w10(ctx):
    rng = np.random.default_rng(10)
    T, B, D, H = 100, 64, 128, 128
    x = rng.standard_normal((T, B, D)).astype(F32)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(F32)
    w = (rng.standard_normal((D, H)) / np.sqrt(D)).astype(F32)   # pre-activations ~ N(0, 1.4): tanh not saturated
    u = (rng.standard_normal((H, H)) / np.sqrt(H)).astype(F32)
    args = (x, h0, w, u)
    wl = Workload("W10", "RNN h = tanh(x[t] @ w + h @ u) over T steps, mean(h * h): grads of w, u, h0",
                  "T=100, x f32[100,64,128], h0 f32[64,128], w f32[128,128], u f32[128,128]",
                  _flat(w10_rnn.reference(*args)), ["float32"] * 4)
    wl.impls.append(Impl("hand (NumPy, x @ w hoisted)", "hand", lambda: w10_rnn.rnn_grad(*args), _flat))
    wl.impls.append(Impl("hand (du after the loop too)", "hand-alt",
                         lambda: w10_rnn.rnn_grad(*args, du_after_loop=True), _flat))
    _add_tapeless(ctx, wl, "w10_rnn.tl", "rnn_grad", args)
    if ctx.with_tapeless:  # -O2: the carries kept every sqrt(T) steps, segments run again (memory, not time)
        m2, _ = ctx.load("w10_rnn.tl", opt_level=2)
        if m2 is not None:
            wl.impls.append(Impl("tapeless -O2 (sqrt(T) checkpoints)", "tapeless-alt",
                                 lambda: m2.rnn_grad(*args), _tapeless_convert))
    wl.targets = {"tapeless": TARGETS["W10"]}
    wl.notes.append("dh0 is ~1e-23: the gradient vanishes over 100 tanh steps (checked relative to its own size)")
    _add_peers(ctx, wl, dict(x=x, h0=h0, w=w, u=u))
    return wl


BUILDERS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W7": w7, "W8": w8, "W9": w9, "W10": w10}
ALL = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10")
