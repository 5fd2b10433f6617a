"""tapeless.runtime: load `.tl` files as modules, and check their gradients.

    from tapeless.runtime import load, gradcheck
    m = load("layer.tl")                   # compile (cached on disk) and import
    loss, dw, db = m.layer_grad(x, y, w, b)
    gradcheck(m.layer_grad, x, y, w, b)
    layer = torch_function(m.layer_grad)   # torch tensors in and out, loss.backward() fills .grad
    layer = jax_function(m.layer_grad)     # a JAX function whose VJP is layer_grad_bwd
    loss, dw, db = dask_grad(m.layer_grad, x, y, w, b)   # x, y dask arrays chunked along N

The interop helpers are thin defs here: importing tapeless.runtime imports neither their modules
nor torch, jax or dask.
"""
from .cache import CacheWarning
from .gradcheck import GradcheckError, gradcheck
from .import_hook import install_import_hook, uninstall_import_hook
from .loader import load


def jax_function(fn):
    """`fn` (m.F_grad or m.F_vjp) as a JAX function of F with a custom VJP: runtime/jax_interop.py."""
    from .jax_interop import jax_function as make

    return make(fn)


def torch_function(fn):
    """fn (m.f_grad or m.f_vjp) as a differentiable torch operation: runtime/torch_interop.py."""
    from .torch_interop import torch_function as make

    return make(fn)


def dask_grad(fn, *args, **options):
    """fn (m.f_grad) over dask arrays chunked along the batch, shard by shard: runtime/dask_interop.py."""
    from .dask_interop import dask_grad as run

    return run(fn, *args, **options)


__all__ = ["load", "install_import_hook", "uninstall_import_hook", "gradcheck", "GradcheckError", "CacheWarning",
           "jax_function", "torch_function", "dask_grad"]
