"""A generated `grad` or `vjp` function as a differentiable PyTorch operation.

    from tapeless.runtime import load, torch_function
    m = load("examples/layer.tl")
    layer = torch_function(m.layer_grad)   # takes torch tensors for all of layer's arguments
    loss = layer(x, y, w, b)               # layer_grad_fwd: the value; the residuals kept for backward
    loss.backward()                        # layer_grad_bwd: adds into w.grad and b.grad, as torch does

Tensors cross to the module's arrays and back without a copy: a NumPy (or numba) module takes CPU
tensors, a CuPy module CUDA tensors, both through DLPack. Each tensor must have exactly the declared
dtype (no silent casts) and be contiguous. torch is imported when torch_function is first called,
never by `import tapeless.runtime`. docs/interop/torch.md says what is checked and why.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import keyword
import numbers
import warnings
from typing import Any, Callable

import numpy as np

from .signature import backend_of, bind_sizes, companion, derivative_entry, dims_text, dtype_of

ACCEPTED = ("grad", "vjp")  # the directives whose functions have a reverse pass (NAME_fwd, NAME_bwd)


def torch_function(fn: Callable) -> Callable:
    """A callable taking torch tensors for all of F's arguments and returning F's outputs as torch
    tensors whose backward runs the module's NAME_bwd; `fn` is a `grad` or `vjp` function of a
    generated module (m.f_grad, m.f_vjp). Gradients reach the directive's `wrt` tensors only."""
    import torch

    op = _Op(fn)
    apply = type(op.name, (_autograd_function(),), {}).apply  # grad_fn shows as <layer_gradBackward>
    signature = inspect.Signature([inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                   for p in op.python_params])

    def call(*args, **kwargs):
        values = args
        if kwargs or len(args) != len(op.params):
            try:
                values = signature.bind(*args, **kwargs).args
            except TypeError as e:
                raise TypeError(f"{op.name}(): {e}") from None
        device = op.check(values)
        if torch.is_grad_enabled():
            op.warn_untracked(values)
            if any(isinstance(values[i], torch.Tensor) and values[i].requires_grad for i in op.wrt_pos):
                return apply(op, device, *values)
        return op.without_grad(device, values)  # torch.no_grad(), or nothing to differentiate: F alone

    call.__name__ = call.__qualname__ = op.name
    call.__module__ = __name__
    call.__doc__ = op.doc()
    call.__signature__ = signature
    return call


class _Op:
    """One grad/vjp function of a generated module, as the autograd function below runs it."""

    def __init__(self, fn: Callable):
        import torch

        name, entry = derivative_entry(fn, "torch_function", ACCEPTED)
        self.name, self.directive, self.of = name, entry["kind"], entry["of"]
        fwd_name, bwd_name = entry["pair"]
        self.fwd, self.bwd = companion(fn, fwd_name), companion(fn, bwd_name)
        fwd_entry = fn.__globals__["__tapeless__"][fwd_name]
        self.params = fwd_entry["params"]  # F's parameters (the vjp's cotangents come from torch)
        self.python_params = tuple(p + "_" if keyword.iskeyword(p) else p for p in self.params)
        self.entry = fwd_entry
        self.types = fwd_entry["in_types"]
        self.torch_dtypes = tuple(getattr(torch, dtype_of(t).name) for t in self.types)
        self.wrt = entry["wrt"]
        self.wrt_pos = tuple(self.params.index(w) for w in self.wrt)
        self.n_outputs = fwd_entry["n_outputs"]
        plain = fn.__globals__.get(self.of)
        self.plain = plain if callable(plain) and getattr(plain, "__name__", None) == self.of else None
        self.backend = backend_of(fn)
        self.bridge = _DeviceBridge(fn.__globals__["cp"]) if self.backend == "cupy" else _HostBridge()

    def spec(self, i: int) -> str:
        short, dims = self.types[i]
        return short + (dims_text(dims) if dims else "")

    def check(self, values) -> Any:
        """Each argument a dense, contiguous tensor of the declared dtype on the backend's device (a
        Python number for a scalar parameter); the tensors' device (None when there is none)."""
        import torch

        device = None
        for i, v in enumerate(values):
            what = f"{self.name}(): argument `{self.params[i]}`"
            if not isinstance(v, torch.Tensor):
                if not self.types[i][1] and isinstance(v, numbers.Number) and not isinstance(v, complex):
                    continue
                scalar = " (or a Python number)" if not self.types[i][1] else ""
                raise TypeError(f"{what} must be a torch.Tensor{scalar} of {self.spec(i)}, got {type(v).__name__}")
            if v.layout != torch.strided:
                raise ValueError(f"{what} must be a dense tensor, got layout {v.layout}: pass `.to_dense()`")
            if not self.bridge.holds(v):
                raise ValueError(f"{what} is on device {v.device}, but {self.name} was compiled for the "
                                 f"{self.backend} backend, which {self.bridge.needs}")
            expected = self.torch_dtypes[i]
            if v.dtype != expected:
                raise TypeError(f"{what} must be a {expected} tensor ({self.spec(i)}), got {v.dtype}; "
                                f"convert it yourself (`.to({expected})`): torch_function never casts")
            if not v.is_contiguous():
                raise ValueError(f"{what} is not contiguous (shape {tuple(v.shape)}, strides {v.stride()}): "
                                 f"pass `{self.params[i]}.contiguous()`")
            if device is None:
                device = v.device
            elif v.device != device:
                raise ValueError(f"{what} is on {v.device}, but an earlier argument is on {device}")
        # shapes and size symbols, here so that the message names this function whichever of the
        # module's functions (F, NAME_fwd) runs
        bind_sizes(self.name, self.entry, [tuple(v.shape) if isinstance(v, torch.Tensor) else () for v in values])
        return device

    def warn_untracked(self, values) -> None:
        import torch

        for i, v in enumerate(values):
            if i not in self.wrt_pos and isinstance(v, torch.Tensor) and v.requires_grad:
                warnings.warn(f"{self.name}: argument `{self.params[i]}` requires grad, but {self.name} "
                              f"differentiates {self.of} with respect to {', '.join(self.wrt)} only, so "
                              f"`{self.params[i]}` gets no gradient (name it in the `{self.directive}` "
                              f"directive's wrt list for one)", stacklevel=3)

    def arrays(self, values) -> list:
        import torch

        return [self.bridge.array(v) if isinstance(v, torch.Tensor) else v for v in values]

    def outputs(self, result) -> list:
        return list(result) if self.n_outputs > 1 else [result]

    def tensors(self, outputs: list):
        tensors = [self.bridge.tensor(o) for o in outputs]
        return tuple(tensors) if self.n_outputs > 1 else tensors[0]

    def without_grad(self, device, values):
        """F itself (NAME_fwd's outputs without its residuals when F is not in the module)."""
        arrays = self.arrays(values)
        with self.bridge.running(device):
            result = self.plain(*arrays) if self.plain is not None else self.fwd(*arrays)[0]
        return self.tensors(self.outputs(result))

    def second_order_message(self) -> str:
        wrt = ", ".join(self.wrt)
        instead = (f"`hvp {self.of} wrt {wrt}` (Hessian-vector products) or `vjp {self.name} wrt {wrt}`"
                   if self.directive == "grad" else f"`vjp {self.name} wrt {wrt}` (its cotangents may be in wrt too)")
        return (f"tapeless: the backward of {self.name} is not differentiable by torch (create_graph=True, "
                f"double backward); compile the second derivative instead: {instead}, and call that "
                f"function (through torch_function if you like)")

    def doc(self) -> str:
        module = self.fwd.__module__
        outputs = {"grad": "value as a 0-d tensor", "vjp": "output as a tensor" if self.n_outputs == 1
                   else "outputs as tensors"}[self.directive]
        first = (getattr(self.plain, "__doc__", None) or "").strip().splitlines()[:1]
        return (f"{self.name}({', '.join(self.python_params)}) on torch tensors: {self.of}'s {outputs} "
                f"whose backward\nruns {self.bwd.__name__} and gives gradients for "
                f"{', '.join(self.wrt)} only.\n\ntapeless.runtime.torch_function({module}.{self.name}); "
                f"the types are {self.of}'s:\n    " + "\n".join(first))


class _HostBridge:
    """NumPy and numba modules: CPU tensors and NumPy arrays, one memory, exchanged through DLPack
    (the protocol CuPy and JAX speak too). NumPy's buffer route (Tensor.numpy, torch.from_numpy)
    is as zero-copy and about 8 us a tensor cheaper here (torch's __dlpack__ is Python code);
    DLPack keeps one route for every array library."""

    needs = "takes CPU tensors: pass `.cpu()` ones, or compile with --backend cupy for CUDA tensors"

    @staticmethod
    def holds(t) -> bool:
        return t.is_cpu

    @staticmethod
    def array(t):
        return np.from_dlpack(t.detach())  # detach: torch lends no tensor that requires grad

    @staticmethod
    def is_array(a) -> bool:
        return isinstance(a, np.ndarray)

    @staticmethod
    def tensor(a):
        import torch

        a = np.asarray(a)  # a NumPy scalar (a result of a reduction) becomes a 0-d array
        if not a.flags.writeable or any(s < 0 for s in a.strides):
            # torch tensors are writable and have no negative strides (torch.from_dlpack aborts the
            # process on one): a read-only view (np.broadcast_to) or a reversed one is copied
            a = a.copy()
        return torch.from_dlpack(a)

    @staticmethod
    def may_share(a, b) -> bool:
        return np.may_share_memory(a, b)

    @staticmethod
    def running(device):
        return contextlib.nullcontext()


class _DeviceBridge:
    """CuPy modules: CUDA tensors and CuPy arrays, one memory, run on torch's current stream."""

    needs = "takes CUDA tensors: pass `.cuda()` ones, or compile with --backend numpy for CPU tensors"

    def __init__(self, cp):
        self.cp = cp

    @staticmethod
    def holds(t) -> bool:
        return t.is_cuda

    def array(self, t):
        return self.cp.from_dlpack(t.detach())

    def is_array(self, a) -> bool:
        return isinstance(a, self.cp.ndarray)

    def tensor(self, a):
        import torch

        a = self.cp.asarray(a)
        if any(s < 0 for s in a.strides):  # (CuPy arrays are never read-only)
            a = a.copy()
        return torch.from_dlpack(a)

    def may_share(self, a, b) -> bool:
        return self.cp.may_share_memory(a, b)

    def running(self, device):
        """CuPy on the tensors' device and on torch's current stream there: the module's kernels are
        ordered with torch's own, with no synchronisation between them."""
        import torch

        stack = contextlib.ExitStack()
        if device is not None:
            stack.enter_context(self.cp.cuda.Device(device.index))
            stack.enter_context(self.cp.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream))
        return stack


@functools.lru_cache(maxsize=None)
def _autograd_function():
    """The torch.autograd.Function subclasses, made on first use so that torch is imported then."""
    import torch

    class TapelessFunction(torch.autograd.Function):
        """forward: NAME_fwd, its residuals saved as tensors; backward: NAME_bwd on them."""

        @staticmethod
        def forward(ctx, op: _Op, device, *values):
            bridge = op.bridge
            arrays = op.arrays(values)
            with bridge.running(device):
                result, residuals = op.fwd(*arrays)
            outputs = op.outputs(result)
            out = op.tensors(outputs)
            out_tensors = list(out) if op.n_outputs > 1 else [out]
            # Residuals are saved as tensors (the same memory), so torch frees them after a backward
            # without retain_graph and checks, through its version counters, that no argument or
            # output they share memory with was changed in place before the backward.
            saved, plan = [], []
            known = [(a, t) for a, t in zip(arrays, values) if isinstance(t, torch.Tensor)]
            known += list(zip(outputs, out_tensors))
            for r in residuals:
                if not bridge.is_array(r):
                    plan.append(("kept", r))  # a scalar: immutable, kept as it is
                    continue
                same = next((t for a, t in known if a is r), None)
                plan.append(("saved", len(saved)))
                saved.append(same if same is not None else bridge.tensor(r))
                if same is None:  # a view: its source's version counter is what an in-place change bumps
                    saved += [t for a, t in known if bridge.is_array(a) and bridge.may_share(a, r)]
            ctx.save_for_backward(*saved)
            ctx.op, ctx.device, ctx.plan = op, device, plan
            ctx.outputs_meta = [(t.shape, t.dtype, t.device) for t in out_tensors]
            ctx.mark_non_differentiable(*[t for t in out_tensors if not t.is_floating_point()])
            return out

        @staticmethod
        def backward(ctx, *grads):
            op = ctx.op
            bridge = op.bridge
            saved = ctx.saved_tensors  # torch's errors: a freed graph, a saved tensor changed in place
            residuals = tuple(bridge.array(saved[v]) if how == "saved" else v for how, v in ctx.plan)
            if op.directive == "grad":
                extra, keywords = (), {"seed": bridge.array(grads[0])}
            else:  # a cotangent per output; torch gives None (or zeros) for outputs it did not use
                extra = tuple(bridge.array(g.contiguous()) if g is not None
                              else bridge.array(torch.zeros(shape, dtype=dtype, device=device))
                              for g, (shape, dtype, device) in zip(grads, ctx.outputs_meta))
                keywords = {}
            needed = [k for k, i in enumerate(op.wrt_pos) if ctx.needs_input_grad[2 + i]]
            with bridge.running(ctx.device):
                d = op.bwd(residuals, *extra, **keywords)
            if torch.is_grad_enabled():  # create_graph=True: the gradients must say they cannot go further
                anchor = torch.empty(0, requires_grad=True)
                tensors = NotDifferentiable.apply(op, anchor, *[d[k] for k in needed])
            else:
                tensors = [bridge.tensor(d[k]) for k in needed]
            result = [None] * (2 + len(op.params))
            for k, t in zip(needed, tensors):
                result[2 + op.wrt_pos[k]] = t
            return tuple(result)

    class NotDifferentiable(torch.autograd.Function):
        """Gradients from NAME_bwd under create_graph=True: differentiating them again raises,
        naming the directive that would compile the second derivative."""

        @staticmethod
        def forward(ctx, op: _Op, anchor, *arrays):
            ctx.message = op.second_order_message()
            return tuple(op.bridge.tensor(a) for a in arrays)

        @staticmethod
        def backward(ctx, *grads):
            raise RuntimeError(ctx.message)

    return TapelessFunction
