"""`jax_function(m.f_grad)`: a tapeless function as a JAX function whose VJP is the generated one.

    import jax
    from tapeless.runtime import load, jax_function
    m = load("layer.tl")                     # grad layer wrt w, b
    layer = jax_function(m.layer_grad)       # layer(x, y, w, b) -> loss, a JAX function
    loss, (dw, db) = jax.jit(jax.value_and_grad(layer, argnums=(2, 3)))(x, y, w, b)

The result is a `jax.custom_vjp` function: its value comes from F itself (the directive's `of`
function: no residuals kept when nothing is differentiated), its forward rule from NAME_fwd and its
backward rule from NAME_bwd, each run on the host through `jax.pure_callback` with result shapes
and dtypes declared from the module's `__tapeless__` types (runtime/signature.py), evaluated at
trace time from the arguments' shapes. So it works under `jax.jit`, `jax.grad`, `jax.vjp` and
`jax.vmap` (sequentially: one call per batch element).

What it refuses, with a message saying what to do instead:
* differentiating an argument not in the directive's `wrt` list (silently zero would be wrong):
  `custom_vjp(symbolic_zeros=True)` tells which arguments JAX perturbs;
* second derivatives (jax.grad of jax.grad, jax.hessian): the generated backward pass is opaque
  to JAX; compile `hvp F wrt ...` or `vjp F_grad wrt ...` instead;
* f64 (parameters, results or residuals) while JAX's x64 mode is off: JAX would compute in f32.
  i64 values travel through JAX as i32 then (JAX's own rule), checked to fit.

Size residuals (a size symbol's value, slot `size`) never go through JAX: they are static at
trace time, read off the arguments' shapes, and handed to NAME_bwd as Python integers.
jax is imported only when jax_function is called.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from . import signature

ACCEPTED = ("grad", "vjp")
VMAP_METHOD = "sequential"  # the generated functions take one example's shapes: one call per element


def jax_function(fn: Callable) -> Callable:
    """F (the function `fn` differentiates) as a JAX function: it takes F's arguments (JAX or
    NumPy arrays, Python scalars) and returns F's outputs; jax.grad / jax.vjp of it with respect
    to the directive's `wrt` arguments run fn's generated backward pass (NAME_bwd).

    fn is the whole `grad` or `vjp` function of a module generated for the NumPy (or numba)
    backend, e.g. m.layer_grad; anything else is a TypeError saying what is accepted."""
    spec = _Spec(fn)
    import jax  # (lazily: the core never imports jax)

    return _Wrapper(spec, jax).function()


class _Spec:
    """What jax_function needs from the module's `__tapeless__` table, checked once."""

    def __init__(self, fn: Callable):
        name, entry = signature.derivative_entry(fn, "jax_function", ACCEPTED)
        if signature.backend_of(fn) == "cupy":
            raise TypeError(f"jax_function({name}): {name} is from a module compiled for the cupy backend, whose "
                            "functions take CuPy arrays; jax.pure_callback hands NumPy arrays to the host: load "
                            "the .tl file with backend='numpy' (or 'numba')")
        table = fn.__globals__["__tapeless__"]
        fwd_name, bwd_name = entry["pair"]
        self.name = name
        self.fwd, self.bwd = signature.companion(fn, fwd_name), signature.companion(fn, bwd_name)
        self.fwd_entry, self.bwd_entry = table[fwd_name], table[bwd_name]
        self.of_name = entry["of"]
        of = fn.__globals__.get(self.of_name)
        # the value alone comes from F when it is a function of this module (cheaper: no residuals)
        self.of = of if self.of_name in table and callable(of) else None
        self.params = tuple(self.fwd_entry["params"])
        self.in_types = tuple(self.fwd_entry["in_types"])
        self.wrt = tuple(entry["wrt"])
        self.wrt_index = tuple(self.params.index(w) for w in self.wrt)
        outputs = self.fwd_entry["outputs"]
        self.n_out = sum(1 for slot, _ in outputs if slot == "primal")
        self.out_types = tuple(self.fwd_entry["out_types"][:self.n_out])
        # residuals, in NAME_fwd's order: (slot, name, type); `size` ones are static
        self.residuals = tuple((slot, rname, t) for (slot, rname), t
                               in zip(outputs[self.n_out:], self.fwd_entry["out_types"][self.n_out:]))
        self.grad_types = tuple(self.bwd_entry["out_types"])
        self.seeded = any(slot == "seed" for slot, _ in self.bwd_entry["inputs"])
        self.ct_types = tuple((n, t) for (slot, n), t in zip(self.bwd_entry["inputs"], self.bwd_entry["in_types"])
                              if slot in ("seed", "cotangent"))

    def what(self) -> str:
        return f"jax_function({self.name})"


class _Wrapper:
    """The JAX function for one spec; a plan (the custom_vjp and its callbacks) per argument shapes,
    kept so that eager calls reuse JAX's compiled callbacks (they are keyed by the callback object)."""

    def __init__(self, spec: _Spec, jax):
        self.spec, self.jax = spec, jax
        self.plans: dict[tuple, _Plan] = {}

    def function(self) -> Callable:
        spec = self.spec
        sig = inspect.signature(spec.fwd)  # F's parameters as Python spells them (`lambda` is `lambda_`)

        def call(*args, **kwargs):
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"{spec.of_name}() (jax_function({spec.name})): {e}") from None
            arrays = [self.convert(p, t, a) for p, t, a in zip(spec.params, spec.in_types, bound.args)]
            plan = self.plan(tuple(tuple(a.shape) for a in arrays))
            outs = plan.core(*arrays)
            return outs[0] if spec.n_out == 1 else tuple(outs)

        call.__name__ = call.__qualname__ = spec.of_name
        call.__signature__ = sig
        wrt = ", ".join(spec.wrt)
        call.__doc__ = (f"{spec.of_name}{sig} as a JAX function (tapeless.runtime.jax_function({spec.name})).\n\n"
                        f"Differentiable with respect to {wrt} through {spec.name}'s backward pass; "
                        "under jax.vmap it runs once per batch element.")
        return call

    def convert(self, pname: str, t: tuple, value: Any):
        """An argument as a JAX array of its parameter's dtype (same_kind casting, as the generated
        functions' own checks; a differentiable conversion outside the custom_vjp)."""
        jnp = self.jax.numpy
        want = self.jax_dtype(t, f"argument `{pname}`")
        try:
            a = jnp.asarray(value)
        except TypeError:
            raise TypeError(f"{self.spec.what()}: argument `{pname}` must be {_spec_text(t)}, "
                            f"got {type(value).__name__}") from None
        if a.dtype == want:
            return a
        if not np.can_cast(a.dtype, want, "same_kind"):
            held = "" if want == signature.dtype_of(t) else f" (JAX holds {t[0]} as {want.name} while x64 is off)"
            raise TypeError(f"{self.spec.what()}: argument `{pname}` must be {_spec_text(t)}: cannot convert "
                            f"{a.dtype} to {want.name}{held} (same_kind casting)")
        return a.astype(want)

    def jax_dtype(self, t: tuple, what: str) -> np.dtype:
        """The dtype JAX holds a value of type t in; f64 without x64 mode is an error."""
        dt = signature.dtype_of(t)
        held = np.dtype(self.jax.dtypes.canonicalize_dtype(dt))
        if dt.kind == "f" and held != dt:
            raise TypeError(f"{self.spec.what()}: {what} is {t[0]}, but JAX's x64 mode is off, so JAX would hold it "
                            f"as {held.name}; enable it (jax.config.update('jax_enable_x64', True), before creating "
                            f"arrays) or declare {t[0].replace('64', '32')} in the .tl file")
        return held

    def plan(self, shapes: tuple) -> "_Plan":
        key = (shapes, np.dtype(self.jax.dtypes.canonicalize_dtype(np.float64)).name)
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = _Plan(self, shapes)
        return plan


class _Plan:
    """For arguments of given shapes: the declared results of each callback, the static size
    residuals, the callbacks and the custom_vjp function calling them."""

    def __init__(self, wrapper: _Wrapper, shapes: tuple):
        spec, jax = wrapper.spec, wrapper.jax
        self.spec, self.jax = spec, jax
        sizes = signature.bind_sizes(spec.what(), spec.fwd_entry, shapes)  # ValueError naming the argument
        struct = jax.ShapeDtypeStruct

        def declared(t, what):
            return struct(signature.shape_of(t[1], sizes), wrapper.jax_dtype(t, what))

        self.outs = tuple(declared(t, f"result {k} of {spec.of_name}") for k, t in enumerate(spec.out_types))
        self.residuals = []  # (slot, name, numpy dtype, struct or static value)
        for slot, rname, t in spec.residuals:
            if slot == "size":
                self.residuals.append((slot, rname, None, sizes[rname[len("size_"):]]))
            else:
                what = f"residual `{rname}` (kept by {spec.fwd.__name__} for {spec.bwd.__name__})"
                self.residuals.append((slot, rname, signature.dtype_of(t), declared(t, what)))
        self.carried = tuple(r[3] for r in self.residuals if r[0] != "size")
        self.grads = tuple(declared(t, f"the gradient for `{w}`") for w, t in zip(spec.wrt, spec.grad_types))
        self.cts = tuple(declared(t, f"the cotangent `{n}`") for n, t in spec.ct_types)
        self.primal_call = self.guarded(self.primal_cb, self.outs)
        self.fwd_call = self.guarded(self.fwd_cb, self.outs + self.carried)
        self.bwd_call = self.guarded(self.bwd_cb, self.grads)
        core = jax.custom_vjp(self.primal)
        core.defvjp(self.fwd, self.bwd, symbolic_zeros=True)
        self.core = core

    # ---- the JAX side (traced) ----------------------------------------------------------------------------
    def primal(self, *args):
        return tuple(self.primal_call(*args))

    def fwd(self, *primals):
        spec = self.spec
        for k, (p, pname) in enumerate(zip(primals, spec.params)):
            if p.perturbed and k not in spec.wrt_index:
                raise TypeError(f"{spec.what()}: JAX differentiates with respect to argument `{pname}`, but "
                                f"{spec.name} gives gradients with respect to {', '.join(spec.wrt)} only; add "
                                f"{pname} to the directive's wrt list, or pass jax.lax.stop_gradient({pname}) "
                                f"if its gradient is not wanted")
        flat = self.fwd_call(*(p.value for p in primals))
        return tuple(flat[:spec.n_out]), tuple(flat[spec.n_out:])

    def bwd(self, carried, cts):
        jnp = self.jax.numpy
        zero = self.jax.custom_derivatives.SymbolicZero
        if all(isinstance(ct, zero) for ct in cts):
            return (None,) * len(self.spec.params)
        # an unused output's cotangent (a symbolic zero), or an integer output's (float0), as zeros
        cts = [jnp.zeros(s.shape, s.dtype) if isinstance(ct, zero) or ct.dtype == self.jax.dtypes.float0 else ct
               for ct, s in zip(cts, self.cts)]
        grads = self.bwd_call(*carried, *cts)
        out: list[Any] = [None] * len(self.spec.params)
        for k, g in zip(self.spec.wrt_index, grads):
            out[k] = g
        return tuple(out)

    def guarded(self, callback: Callable, structs: tuple) -> Callable:
        """pure_callback(callback) that JAX cannot differentiate, with a message saying so: it is
        only differentiated when a derivative of the custom_vjp is itself differentiated."""
        jax, spec = self.jax, self.spec

        @jax.custom_jvp
        def call(*args):
            return jax.pure_callback(callback, structs, *args, vmap_method=VMAP_METHOD)

        def no_jvp(primals, tangents):
            raise TypeError(
                f"{spec.what()}: JAX cannot differentiate {spec.name}'s generated derivative (jax.grad of "
                f"jax.grad, jax.hessian, ...): for second derivatives compile `hvp {spec.of_name} wrt ...` or "
                f"`vjp {spec.name} wrt ...` and call that (wrapping the vjp with jax_function)")

        call.defjvp(no_jvp)
        return call

    # ---- the host side (NumPy, inside pure_callback) ------------------------------------------------------
    def primal_cb(self, *args):
        spec = self.spec
        if spec.of is not None:
            outs = spec.of(*_host(args))
        else:
            outs, _ = spec.fwd(*_host(args))
        return _results(outs if spec.n_out > 1 else (outs,), self.outs, spec.of_name)

    def fwd_cb(self, *args):
        spec = self.spec
        outs, residuals = spec.fwd(*_host(args))
        outs = outs if spec.n_out > 1 else (outs,)
        kept = [r for r, (slot, *_) in zip(residuals, self.residuals) if slot != "size"]
        return _results(tuple(outs) + tuple(kept), self.outs + self.carried, spec.fwd.__name__)

    def bwd_cb(self, *args):
        spec = self.spec
        args = _host(args)
        n = len(self.carried)
        carried, cts = iter(args[:n]), args[n:]
        residuals = tuple(np.int64(static) if slot == "size" else next(carried).astype(dt, copy=False)
                          for slot, _, dt, static in self.residuals)
        grads = spec.bwd(residuals, seed=cts[0]) if spec.seeded else spec.bwd(residuals, *cts)
        return _results(grads, self.grads, spec.bwd.__name__)


def _host(args) -> list[np.ndarray]:
    return [np.asarray(a) for a in args]


def _results(values, structs, fn_name: str) -> tuple[np.ndarray, ...]:
    """Each value as exactly its declared dtype (a NumPy scalar as a 0-d array); an integer that
    does not fit the dtype JAX holds it in (i64 as i32 without x64) is an error, never wrapped."""
    out = []
    for v, s in zip(values, structs):
        a = np.asarray(v)
        if a.dtype != s.dtype:
            b = a.astype(s.dtype)
            if a.dtype.kind in "iu" and a.size and not np.array_equal(a, b):
                raise OverflowError(f"{fn_name}: an integer result does not fit {np.dtype(s.dtype).name}, which JAX "
                                    "holds i64 values in while its x64 mode is off")
            a = b
        out.append(a)
    return tuple(out)


def _spec_text(t: tuple) -> str:
    return t[0] + (signature.dims_text(t[1]) if t[1] else "")
