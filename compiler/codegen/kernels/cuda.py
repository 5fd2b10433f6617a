"""The primitives' scalar expressions (their `scalar` facet) as CUDA C++, for CuPy's kernels.

A scalar expression is C-like text over operands {0}, {1}, ... calling only the functions of
primitives/common.SCALAR_FUNCTIONS; kernels/program.py parses it into a typed tree (SExpr),
which is printed here as CUDA C++, each operation in the dtype it computes in:

- a function becomes CUDA's for that dtype (`exp` -> `expf` in float32, `exp` in float64),
  never a double call on float values, so a float32 kernel stays in float32;
- a number in the text becomes a literal of that dtype (`0` -> `0.0f`);
- `select(c, a, b)` is `c ? a : b`, `cast(x, dtype)` a C cast;
- `max`, `min`, `sign` are the preamble's `_tl_max`, `_tl_min`, `_tl_sign`: NumPy's, where a
  NaN operand gives NaN (CUDA's max/min are fmaxf/fminf, which give the other operand).

The special functions CUDA's library lacks, or has with no CPU counterpart to verify it
against (erfinv, erfcx, ndtr, log_ndtr, digamma, polygamma, i0, i1, i0e, i1e), have no C++
form here: `renderable` says so, and the CuPy backend calls cupyx.scipy.special for them
outside its kernels. Integer arithmetic stays out too (C's integer division and overflow are
not NumPy's): a kernel computes in float32 or float64, with bool masks.
"""
from __future__ import annotations

import math
import re
from typing import Callable

from ...core.types import DType
from ...primitives.common import CUDA_FORMS, CUDA_FUNCTIONS

FUNCTIONS = CUDA_FUNCTIONS  # scalar-language name -> (float32 function, float64 function)
SPECIAL_FORMS = tuple(CUDA_FORMS)  # written as C operators, not calls

# the preamble's helpers, each a device function over float and double
HELPERS: dict[str, str] = {
    "_tl_max": "template <typename T> __device__ __forceinline__ T _tl_max(T a, T b) "
               "{ return (a > b || a != a) ? a : b; }  // NumPy's maximum: NaN wins",
    "_tl_min": "template <typename T> __device__ __forceinline__ T _tl_min(T a, T b) "
               "{ return (a < b || a != a) ? a : b; }  // NumPy's minimum: NaN wins",
    "_tl_sign": "template <typename T> __device__ __forceinline__ T _tl_sign(T x) "
                "{ return x > 0 ? T(1) : (x < 0 ? T(-1) : x); }  // NumPy's sign: 0 and NaN kept",
}

CTYPES = {DType.F32: "float", DType.F64: "double", DType.BOOL: "bool", DType.I32: "int", DType.I64: "long long"}
KERNEL_DTYPES = (DType.F32, DType.F64, DType.BOOL)


# ---- printing -----------------------------------------------------------------------------------------
_PREC = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, "<=": 4, ">": 4, ">=": 4, "+": 5, "-": 5, "*": 6, "/": 6}
_UNARY_PREC = 7
_ATOM_PREC = 8


def literal(value, dtype: DType) -> str:
    """A constant as a C++ literal of `dtype` (float32: `0.5f`; inf and NaN as INFINITY, NAN)."""
    if dtype is DType.BOOL:
        return "true" if value else "false"
    if not dtype.is_float:
        return f"{int(value)}" + ("LL" if dtype is DType.I64 else "")
    v = float(value)
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    text = str(dtype.np.type(v))  # the shortest text that round-trips in the dtype
    if not re.search(r"[.eE]", text):
        text += ".0"
    return text + ("f" if dtype is DType.F32 else "")


def renderable(fns, dtypes) -> bool:
    """Whether a computation calling `fns` over operands and results of `dtypes` has a CUDA C++
    form here (every dtype float32, float64 or bool)."""
    return all(d in KERNEL_DTYPES for d in dtypes) and set(fns) <= set(FUNCTIONS) | set(SPECIAL_FORMS)


def expr(e, leaf: Callable[[object], str], used: set[str] | None = None) -> str:
    """A typed scalar expression (kernels/program.py's SExpr) as CUDA C++. leaf(e) names what a
    Load, Reduced, Ref or size Const reads (a parameter or a local); `used` collects the preamble
    helpers it calls. Each function is CUDA's for the dtype of its operands."""

    def show(x, ctx_prec: int, right: bool = False) -> str:
        text, prec = emit(x)
        # (also where C needs none but a reader would: a comparison of comparisons, && in ||)
        mixed = (ctx_prec in (3, 4) and prec in (3, 4)) or (ctx_prec == 1 and prec == 2)
        if prec < ctx_prec or mixed or (right and prec == ctx_prec and prec != _UNARY_PREC):
            return f"({text})"
        return text

    def emit(x) -> tuple[str, int]:
        kind = type(x).__name__
        if kind == "Const":
            if isinstance(x.value, (bool, int, float)):
                text = literal(x.value, x.dtype)
                return text, (_UNARY_PREC if text.startswith("-") else _ATOM_PREC)
            return f"({CTYPES[x.dtype]}){leaf(x)}", _UNARY_PREC  # a size
        if kind in ("Load", "Reduced", "Ref"):
            return leaf(x), _ATOM_PREC
        if kind == "Unary":
            inner = show(x.a, _UNARY_PREC)
            return f"{x.op}{' ' if inner.startswith(x.op) else ''}{inner}", _UNARY_PREC
        if kind == "Binary":
            prec = _PREC[x.op]
            return f"{show(x.a, prec)} {x.op} {show(x.b, prec, right=True)}", prec
        form = CUDA_FORMS.get(x.fn)
        if form is not None:  # select as `c ? a : b`, cast as `(float)(x)`
            text, prec = form
            args = [show(v, 1) if prec == 0 else emit(v)[0] for v in x.args]
            return text.format(*args, type=CTYPES[x.dtype]), prec
        if x.fn not in FUNCTIONS:
            raise ValueError(f"{x.fn} has no CUDA C++ form here (the CuPy backend calls it outside a kernel)")
        floats = [a.dtype for a in x.args if a.dtype.is_float] or [x.dtype]
        name = FUNCTIONS[x.fn][0 if floats[0] is DType.F32 else 1]
        if used is not None and name in HELPERS:
            used.add(name)
        return f"{name}({', '.join(show(a, 0) for a in x.args)})", _ATOM_PREC

    return emit(e)[0]


def preamble(used) -> str:
    """The helpers an operation calls, for a kernel's preamble."""
    return "\n".join(HELPERS[name] for name in sorted(used))
