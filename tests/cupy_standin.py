"""A NumPy-backed stand-in for `cupy` that offers only the names generated code may use.

The CuPy backend is tested on machines without a GPU by importing generated
modules against this stand-in: any name the generated code reaches for that is
not listed here (and so may not exist in CuPy, or behaves differently) fails
the test with an AttributeError. Every name listed exists in CuPy >= 13 with
NumPy's semantics.

ElementwiseKernel and ReductionKernel, which the backend makes of fused chains, are
the CPU harness's (tests/cupy_kernels_cpu.py: their C++ compiled by g++); without a
C++ compiler a module that makes kernels cannot run here, and `needs_kernels` says why.
"""
from __future__ import annotations

import re
import types

import numpy

import cupy_kernels_cpu

ALLOWED = sorted("""
ndarray asarray can_cast dtype iinfo float16 float32 float64 int32 int64 bool_ inf nan
exp log log1p expm1 sqrt abs sign sin cos tan tanh maximum minimum where clip logaddexp isfinite
logical_and logical_or logical_not add subtract
arcsin arccos arctan arctan2 sinh cosh arcsinh arccosh arctanh hypot log2 log10 exp2 cbrt square reciprocal
floor ceil trunc round mod fmod
cumsum cumprod roll argsort argmax argmin tril triu
sum prod max min einsum diagonal broadcast_to squeeze expand_dims concatenate take take_along_axis
zeros zeros_like empty empty_like ones full eye arange swapaxes matmul copyto
""".split())


# cupyx.scipy.special: the special functions generated code calls (all in CuPy >= 13)
SPECIAL = sorted("""
erf erfc erfinv erfcx ndtr log_ndtr gammaln digamma polygamma xlogy xlog1py logit i0 i1 i0e i1e j0 j1
""".split())


# cupy.linalg: the factorizations generated code calls (batched in CuPy >= 13, as NumPy's)
LINALG = sorted("solve inv det slogdet cholesky eigh svd qr".split())


def make_standin() -> types.ModuleType:
    mod = types.ModuleType("cupy", "NumPy-backed stand-in for cupy (tests only)")
    for name in ALLOWED:
        setattr(mod, name, getattr(numpy, name))
    mod.ElementwiseKernel = cupy_kernels_cpu.ElementwiseKernel
    mod.ReductionKernel = cupy_kernels_cpu.ReductionKernel
    mod.lib = types.ModuleType("cupy.lib")  # sliding_window_view: CuPy >= 10
    mod.lib.stride_tricks = types.SimpleNamespace(sliding_window_view=numpy.lib.stride_tricks.sliding_window_view)
    mod.linalg = types.ModuleType("cupy.linalg")
    for name in LINALG:
        setattr(mod.linalg, name, getattr(numpy.linalg, name))
    return mod


def make_special_standin() -> dict[str, types.ModuleType]:
    """`cupyx`, `cupyx.scipy` and `cupyx.scipy.special` backed by scipy.special, for sys.modules."""
    import scipy.special

    special = types.ModuleType("cupyx.scipy.special", "scipy.special-backed stand-in (tests only)")
    for name in SPECIAL:
        setattr(special, name, getattr(scipy.special, name))
    scipy_mod = types.ModuleType("cupyx.scipy")
    scipy_mod.special = special
    root = types.ModuleType("cupyx")
    root.scipy = scipy_mod
    return {"cupyx": root, "cupyx.scipy": scipy_mod, "cupyx.scipy.special": special}


def needs_kernels(source: str) -> str | None:
    """Why a generated CuPy module cannot run on the stand-in here (it makes CUDA kernels and
    there is no C++ compiler to run them on the CPU), or None."""
    if cupy_kernels_cpu.compiler() is None and re.search(r"\b\w+\.(Elementwise|Reduction)Kernel\(", source):
        return "the module makes CuPy kernels and there is no C++ compiler (g++) to run them on the CPU"
    return None
