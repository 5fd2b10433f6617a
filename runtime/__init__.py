"""tapeless.runtime: load `.tl` files as modules, and check their gradients.

    from tapeless.runtime import load, gradcheck
    m = load("layer.tl")                   # compile (cached on disk) and import
    loss, dw, db = m.layer_grad(x, y, w, b)
    gradcheck(m.layer_grad, x, y, w, b)
    layer = torch_function(m.layer_grad)   # torch tensors in and out, loss.backward() fills .grad
"""
from .cache import CacheWarning
from .gradcheck import GradcheckError, gradcheck
from .import_hook import install_import_hook, uninstall_import_hook
from .loader import load


def jax_function(fn):
    """`fn` (m.F_grad or m.F_vjp) as a JAX function of F with a custom VJP: runtime/jax_interop.py.
    (A thin def: importing tapeless.runtime does not import jax.)"""
    from .jax_interop import jax_function as make

    return make(fn)


def torch_function(fn):
    """fn (m.f_grad or m.f_vjp) as a differentiable torch operation: runtime/torch_interop.py. Defined
    here so that `import tapeless.runtime` imports neither that module nor torch."""
    from .torch_interop import torch_function as make

    return make(fn)


__all__ = ["load", "install_import_hook", "uninstall_import_hook", "gradcheck", "GradcheckError", "CacheWarning",
           "jax_function", "torch_function"]
