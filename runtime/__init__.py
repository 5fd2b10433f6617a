"""tapeless.runtime: load `.tl` files as modules, and check their gradients.

    from tapeless.runtime import load, gradcheck
    m = load("layer.tl")                   # compile (cached on disk) and import
    loss, dw, db = m.layer_grad(x, y, w, b)
    gradcheck(m.layer_grad, x, y, w, b)
    loss, dw, db = dask_grad(m.layer_grad, x, y, w, b)   # x, y dask arrays chunked along N
"""
from .cache import CacheWarning
from .gradcheck import GradcheckError, gradcheck
from .import_hook import install_import_hook, uninstall_import_hook
from .loader import load

__all__ = ["load", "install_import_hook", "uninstall_import_hook", "gradcheck", "GradcheckError", "CacheWarning",
           "dask_grad"]


def __getattr__(name):  # the interop helpers: their modules (and libraries) only when asked for
    if name == "dask_grad":
        from .dask_interop import dask_grad

        return dask_grad
    raise AttributeError(f"module 'tapeless.runtime' has no attribute {name!r}")
