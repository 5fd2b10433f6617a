"""tapeless.runtime.torch_function: a generated grad/vjp function as a torch autograd operation.

Trained against the same model written in torch (Adam, 50 steps), a two-output vjp under a torch
expression against torch's autograd, zero copies both ways, .grad accumulation and retain_graph,
torch.no_grad(), in-place changes caught, double backward refused, and every refused input named.
"""
from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is optional: torch_function's tests need it")

from tapeless.runtime import torch_function  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

TWO = """
fn two(x: f32[N, 3], w: f32[3, 4], s: f32, k: i64[N]) -> (f32[N, 4], f32) {
    h = tanh(x @ w) * s
    return h, mean(cross_entropy(h, k))
}
vjp two wrt x, w, s
jvp two wrt x
"""


def torch_two(x, w, s, k):
    h = torch.tanh(x @ w) * s
    return h, torch.nn.functional.cross_entropy(h, k)


@pytest.fixture
def layer(tl):
    return tl((ROOT / "examples" / "layer.tl").read_text(), path="layer.tl")


@pytest.fixture
def two(tl):
    return tl(TWO, path="two.tl")


def layer_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 784, generator=g)
    y = (torch.rand(n, 10, generator=g) > 0.5).float()
    w = torch.randn(784, 10, generator=g) * 0.05
    b = torch.randn(10, generator=g) * 0.1
    return x, y, w, b


def two_data(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, generator=g), torch.randn(3, 4, generator=g), torch.tensor(1.5),
            torch.randint(0, 4, (n,), generator=g))


def record(m, name):
    """Replace m.NAME by a wrapper that records each call's arguments and result (before
    torch_function looks it up); returns the list of (args, kwargs, result)."""
    calls, fn = [], getattr(m, name)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        result = fn(*args, **kwargs)
        calls.append((args, kwargs, result))
        return result

    setattr(m, name, wrapper)
    return calls


def test_adam_steps_match_the_same_model_in_torch(layer):
    x, y, w0, b0 = layer_data()
    f = torch_function(layer.layer_grad)
    runs = []
    for loss_of in (f, lambda x, y, w, b: torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y)):
        w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
        opt = torch.optim.Adam([w, b], lr=3e-3)  # 1e-2 fits these 64 rows exactly: losses near 2e-4 are
        # then differences of nearly equal f32 terms, as far apart (6e-5) in torch with two summation orders
        losses = []
        for _ in range(50):
            opt.zero_grad()
            loss = loss_of(x, y, w, b)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        runs.append((np.array(losses), w.detach().numpy(), b.detach().numpy()))
    (losses, w, b), (want_losses, want_w, want_b) = runs
    assert want_losses[-1] < 0.5 * want_losses[0]  # it trained: the comparison is not of two idle runs
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
    for got, want in ((w, want_w), (b, want_b)):
        assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_two_outputs_backward_through_a_torch_expression(two):
    f = torch_function(two.two_vjp)
    x, w, s, k = two_data()
    grads = []
    for fn in (f, torch_two):
        xs, ws, ss = (t.clone().requires_grad_() for t in (x, w, s))
        h, ce = fn(xs, ws, ss, k)
        out = torch.sin(h) * 2 + ce  # both outputs used, as PyTorch code does
        out.backward(torch.ones_like(out))
        grads.append([t.grad for t in (xs, ws, ss)])
        assert h.shape == (6, 4) and ce.shape == ()
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_an_unused_output_gets_a_zero_cotangent(two):
    f = torch_function(two.two_vjp)
    x, w, s, k = two_data()
    grads = []
    for fn in (f, torch_two):
        xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
        ce = fn(xs, ws, 0.5, k)[1]  # h unused: torch gives no gradient for it; s a Python number
        ce.backward()
        grads.append((xs.grad, ws.grad))
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_tensors_cross_without_copies(two):
    fwd_calls, bwd_calls = record(two, "two_vjp_fwd"), record(two, "two_vjp_bwd")
    f = torch_function(two.two_vjp)
    x, w, s, k = two_data()
    x.requires_grad_()
    w.requires_grad_()
    h, ce = f(x, w, s, k)
    (args, _, ((h_array, _), residuals)), = fwd_calls
    for tensor, array in zip((x, w, s, k), args):
        assert isinstance(array, np.ndarray) and array.ctypes.data == tensor.data_ptr()
    assert h.data_ptr() == h_array.ctypes.data  # the result is the module's array
    (h * h).sum().backward()
    (res, ct0, _), _, (d_x, d_w, _) = bwd_calls[0]
    assert ct0.dtype == np.float32 and ct0.shape == (6, 4)
    assert any(r.ctypes.data == x.data_ptr() for r in res if isinstance(r, np.ndarray))  # residual x is x
    # the gradients torch received are the module's arrays (torch keeps a fresh gradient as .grad)
    assert x.grad.data_ptr() == d_x.ctypes.data and w.grad.data_ptr() == d_w.ctypes.data


def test_grad_accumulates_for_wrt_tensors_only(layer):
    f = torch_function(layer.layer_grad)
    x, y, w, b = layer_data(n=16)
    w.requires_grad_()
    b.requires_grad_()
    loss = f(x, y, w, b)
    loss.backward(retain_graph=True)
    first = w.grad.clone(), b.grad.clone()
    loss.backward()  # the residuals are still there: retain_graph=True kept them
    torch.testing.assert_close(w.grad, 2 * first[0])
    torch.testing.assert_close(b.grad, 2 * first[1])
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()  # without retain_graph torch freed them, as for its own operations

    x.requires_grad_()  # not in `grad layer wrt w, b`: no gradient, and a warning that says so
    with pytest.warns(UserWarning, match=r"argument `x` requires grad, but layer_grad differentiates layer "
                                         r"with respect to w, b only"):
        f(x, y, w, b).backward()
    assert x.grad is None and y.grad is None


def test_seed_scales_the_gradient(layer):
    f = torch_function(layer.layer_grad)
    x, y, w, b = layer_data(n=8)
    w.requires_grad_()
    f(x, y, w, b).backward(torch.tensor(3.0))
    _, residuals = layer.layer_grad_fwd(x.numpy(), y.numpy(), w.detach().numpy(), b.numpy())
    np.testing.assert_array_equal(w.grad.numpy(), layer.layer_grad_bwd(residuals, seed=3.0)[0])


def test_no_grad_runs_the_forward_function_alone(layer):
    plain, fwd = record(layer, "layer"), record(layer, "layer_grad_fwd")
    f = torch_function(layer.layer_grad)
    x, y, w, b = layer_data(n=8)
    w.requires_grad_()
    with torch.no_grad():
        loss = f(x, y, w, b)
    assert loss.grad_fn is None and not loss.requires_grad and loss.shape == ()
    assert (len(plain), len(fwd)) == (1, 0)  # no residuals made
    assert loss.item() == pytest.approx(float(layer.layer(x.numpy(), y.numpy(), w.detach().numpy(), b.numpy())))
    assert f(x, y, w.detach(), b).grad_fn is None  # nothing to differentiate: the same
    assert f(x, y, w, b).grad_fn is not None and len(fwd) == 1
    assert type(f(x, y, w, b).grad_fn).__name__ == "layer_gradBackward"


def test_in_place_changes_before_backward_are_caught(layer, two):
    f = torch_function(layer.layer_grad)
    x, y, w, b = layer_data(n=8)
    w.requires_grad_()
    loss = f(x, y, w, b)
    x.mul_(2)  # x is a residual of layer_grad_fwd: the backward would read the new values
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()

    x, w, s, k = two_data()
    w.requires_grad_()
    h, _ = torch_function(two.two_vjp)(x, w, s, k)
    h2 = h * 1
    h.detach().zero_()  # h is also a residual of two_vjp_fwd
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        h2.sum().backward()


def test_double_backward_names_the_directives_to_compile(layer, two):
    f = torch_function(layer.layer_grad)
    x, y, w, b = layer_data(n=8)
    w.requires_grad_()
    b.requires_grad_()
    g_w, g_b = torch.autograd.grad(f(x, y, w, b), (w, b), create_graph=True)
    _, d_w, d_b = layer.layer_grad(*(t.detach().numpy() for t in (x, y, w, b)))
    np.testing.assert_allclose(g_w.detach().numpy(), d_w)  # the first derivative is still right
    with pytest.raises(RuntimeError, match=r"backward of layer_grad is not differentiable by torch.*"
                                           r"`hvp layer wrt w, b`.*`vjp layer_grad wrt w, b`"):
        (g_w.square().sum() + g_b.sum()).backward()

    x, w, s, k = two_data()
    w.requires_grad_()
    g_w, = torch.autograd.grad(torch_function(two.two_vjp)(x, w, s, k)[1], w, create_graph=True)
    torch.testing.assert_close(g_w, torch.autograd.grad(torch_two(x, w, s, k)[1], w)[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match=r"`vjp two_vjp wrt x, w, s`"):
        g_w.sum().backward()


def test_refused_arguments_are_named(layer, two):
    f = torch_function(layer.layer_grad)
    x, y, w, b = layer_data(n=8)
    with pytest.raises(TypeError, match=r"layer_grad\(\): argument `w` must be a torch.float32 tensor "
                                        r"\(f32\[784, 10\]\), got torch.float64; convert it yourself"):
        f(x, y, w.double(), b)
    with pytest.raises(ValueError, match=r"layer_grad\(\): argument `w` is not contiguous \(shape \(784, 10\), "
                                         r"strides \(1, 784\)\): pass `w.contiguous\(\)`"):
        f(x, y, w.T.contiguous().T, b)
    with pytest.raises(ValueError, match=r"argument `x` is on device meta, but layer_grad was compiled for "
                                         r"the numpy backend, which takes CPU tensors"):
        f(x.to("meta"), y, w, b)
    with pytest.raises(TypeError, match=r"layer_grad\(\): argument `b` must be a torch.Tensor of f32\[10\], "
                                        r"got ndarray"):
        f(x, y, w, b.numpy())
    with pytest.raises(ValueError, match=r"argument `b` must be a dense tensor, got layout torch.sparse_coo"):
        f(x, y, w, b.to_sparse())
    with pytest.raises(ValueError, match=r"argument `b` is not contiguous"):
        f(x, y, w, torch.ones(1).expand(10))
    with pytest.raises(TypeError, match=r"layer_grad\(\): missing a required argument: 'b'"):
        f(x, y, w)
    with pytest.raises(ValueError, match=r"layer_grad: argument 'x' should have shape \[N, 784\], got \(8, 5\)"):
        f(x[:, :5].contiguous(), y, w, b)
    with pytest.raises(ValueError, match=r"layer_grad: argument 'y' has N = 4, but an earlier argument has N = 8"):
        f(x, y[:4], w, b)
    g = torch_function(two.two_vjp)
    x, w, s, k = two_data()
    with pytest.raises(TypeError, match=r"argument `k` must be a torch.int64 tensor \(i64\[N\]\), got torch.int32"):
        g(x, w, s, k.int())
    with pytest.raises(TypeError, match=r"argument `s` must be a torch.Tensor \(or a Python number\) of f32, got str"):
        g(x, w, "1", k)


def test_only_grad_and_vjp_functions_are_accepted(layer, two):
    with pytest.raises(TypeError, match="not a function of a tapeless-generated module"):
        torch_function(np.sum)
    with pytest.raises(TypeError, match=r"layer is a plain function \(add `grad layer wrt ...` or `vjp layer "
                                        r"wrt ...` to the .tl file\); torch_function takes the whole function of a `grad` or `vjp` directive"):
        torch_function(layer.layer)
    with pytest.raises(TypeError, match=r"two_jvp is made by a `jvp` directive \(accepted: `grad`, `vjp`\)"):
        torch_function(two.two_jvp)
    with pytest.raises(TypeError, match=r"the fwd half of `grad layer` \(pass the whole function, m.layer_grad\)"):
        torch_function(layer.layer_grad_fwd)


def test_a_cupy_module_refuses_cpu_tensors(tmp_path):
    from test_cupy_backend import import_cupy_module
    from tapeless.compiler import compile_source

    m = import_cupy_module(compile_source("fn f(x: f32[N]) -> f32 { return sum(x * x) }\ngrad f wrt x\n",
                                          backend="cupy", path="f.tl"), tmp_path, "standin")
    with pytest.raises(ValueError, match=r"argument `x` is on device cpu, but f_grad was compiled for the cupy "
                                         r"backend, which takes CUDA tensors"):
        torch_function(m.f_grad)(torch.ones(3, requires_grad=True))


def test_the_cupy_bridge_on_the_cpu_stand_in(layer, tmp_path, monkeypatch):
    """The CuPy path's conversions (cupy.from_dlpack in, torch.from_dlpack out) end to end, with the
    NumPy-backed cupy stand-in: only the device test and the device/stream context are bypassed."""
    from test_cupy_backend import import_cupy_module
    from tapeless.compiler import compile_source
    from tapeless.runtime import torch_interop

    m = import_cupy_module(compile_source((ROOT / "examples" / "layer.tl").read_text(), backend="cupy",
                                          path="layer.tl"), tmp_path, "standin")
    monkeypatch.setattr(m.cp, "from_dlpack", np.from_dlpack, raising=False)
    monkeypatch.setattr(m.cp, "may_share_memory", np.may_share_memory, raising=False)
    monkeypatch.setattr(torch_interop._DeviceBridge, "holds", staticmethod(lambda t: True))
    monkeypatch.setattr(torch_interop._DeviceBridge, "running", lambda self, device: contextlib.nullcontext())
    fwd_calls = record(m, "layer_grad_fwd")
    grads = []
    for module in (m, layer):
        x, y, w, b = layer_data(n=16)
        w.requires_grad_()
        loss = torch_function(module.layer_grad)(x, y, w, b)
        loss.backward()
        grads.append((loss.item(), w.grad))
        if module is m:
            assert fwd_calls[0][0][0].ctypes.data == x.data_ptr()  # through DLPack, the same memory
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-5, atol=1e-7)


def _has_gpu() -> bool:
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_gpu(), reason="needs a CUDA GPU with both torch.cuda and cupy")
def test_cupy_module_on_cuda_tensors_matches_numpy(layer, tl):
    m = tl((ROOT / "examples" / "layer.tl").read_text(), path="layer.tl", backend="cupy")
    grads = []
    for module, device in ((layer, "cpu"), (m, "cuda")):
        x, y, w, b = (t.to(device) for t in layer_data(n=32))
        w.requires_grad_()
        b.requires_grad_()
        loss = torch_function(module.layer_grad)(x, y, w, b)
        assert loss.device.type == device
        loss.backward()
        grads.append((loss.item(), w.grad.cpu(), b.grad.cpu()))
    (l0, w0, b0), (l1, w1, b1) = grads
    assert l1 == pytest.approx(l0, rel=1e-5)
    torch.testing.assert_close(w1, w0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b1, b0, rtol=1e-5, atol=1e-6)


def test_importing_the_runtime_does_not_import_torch():
    code = "import sys, tapeless.runtime as r; assert callable(r.torch_function); assert 'torch' not in sys.modules"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
