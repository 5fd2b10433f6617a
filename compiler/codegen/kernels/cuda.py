"""The primitives' scalar expressions (their `scalar` facet) as CUDA C++, for CuPy's kernels.

A scalar expression is C-like text over operands {0}, {1}, ... and attributes {name}, calling
only the functions of primitives/common.SCALAR_FUNCTIONS. It is parsed here (a small
precedence parser) and printed as CUDA C++ for one floating dtype, the dtype the operation
computes in:

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
from functools import lru_cache

from ...core.types import DType

# scalar-language name -> (float32 function, float64 function)
FUNCTIONS: dict[str, tuple[str, str]] = {
    **{name: (name + "f", name) for name in (
        "exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "tanh", "asin", "acos", "atan", "atan2",
        "sinh", "cosh", "asinh", "acosh", "atanh", "hypot", "log2", "log10", "exp2", "cbrt", "floor", "ceil",
        "trunc", "rint", "fmod", "pow", "fabs", "erf", "erfc", "lgamma", "j0", "j1")},
    "max": ("_tl_max", "_tl_max"), "min": ("_tl_min", "_tl_min"), "sign": ("_tl_sign", "_tl_sign"),
}
SPECIAL_FORMS = ("select", "cast")  # written as C operators, not calls

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


# ---- parsing ----------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)|(?P<hole>\{\w+\})"
                    r"|(?P<name>[A-Za-z_]\w*)|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/<>!(),]))")
# binary operators by precedence, lowest first (C's)
_LEVELS = (("||",), ("&&",), ("==", "!="), ("<", "<=", ">", ">="), ("+", "-"), ("*", "/"))
_PREC = {op: k + 1 for k, ops in enumerate(_LEVELS) for op in ops}
_UNARY_PREC = len(_LEVELS) + 1
_ATOM_PREC = _UNARY_PREC + 1


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"scalar expression {text!r}: cannot read {text[pos:]!r}")
        out.append((m.lastgroup, m.group(m.lastgroup)))
        pos = m.end()
    return out


@lru_cache(maxsize=None)
def parse(template: str) -> tuple:
    """The expression as a tree: ("num", text) | ("hole", name) | ("call", fn, args) |
    ("unary", op, x) | ("binary", op, left, right)."""
    toks = _tokens(template)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else (None, None)

    def take(value=None):
        nonlocal pos
        kind, text = peek()
        if value is not None and text != value:
            raise ValueError(f"scalar expression {template!r}: expected {value!r}, got {text!r}")
        pos += 1
        return kind, text

    def binary(level):
        if level == len(_LEVELS):
            return unary()
        left = binary(level + 1)
        while peek()[1] in _LEVELS[level] and peek()[0] == "op":
            op = take()[1]
            left = ("binary", op, left, binary(level + 1))
        return left

    def unary():
        if peek() in (("op", "-"), ("op", "!")):
            return ("unary", take()[1], unary())
        return atom()

    def atom():
        kind, text = take()
        if kind == "num":
            return ("num", text)
        if kind == "hole":
            return ("hole", text[1:-1])
        if kind == "name":
            if peek()[1] != "(":
                return ("name", text)
            take("(")
            args = [binary(0)]
            while peek()[1] == ",":
                take(",")
                args.append(binary(0))
            take(")")
            return ("call", text, tuple(args))
        if text == "(":
            inner = binary(0)
            take(")")
            return inner
        raise ValueError(f"scalar expression {template!r}: unexpected {text!r}")

    tree = binary(0)
    if pos != len(toks):
        raise ValueError(f"scalar expression {template!r}: unexpected {toks[pos][1]!r}")
    return tree


def calls(tree) -> set[str]:
    """The functions an expression calls."""
    if tree[0] == "call":
        return {tree[1]}.union(*(calls(a) for a in tree[2]))
    if tree[0] == "unary":
        return calls(tree[2])
    if tree[0] == "binary":
        return calls(tree[2]) | calls(tree[3])
    return set()


# ---- printing -----------------------------------------------------------------------------------------
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
    text = repr(float(dtype.np.type(v)))  # the shortest text that round-trips in float64...
    if dtype is DType.F32:
        text = str(dtype.np.type(v))  # ...or in float32
    if not re.search(r"[.eE]", text):
        text += ".0"
    return text + ("f" if dtype is DType.F32 else "")


def renderable(template: str, dtypes) -> bool:
    """Whether the expression has a CUDA C++ form here, computing over operands and a result of
    `dtypes` (every one float32, float64 or bool)."""
    if not all(d in KERNEL_DTYPES for d in dtypes):
        return False
    return calls(parse(template)) <= set(FUNCTIONS) | set(SPECIAL_FORMS)


def render(template: str, args: list[str], dtype: DType, attrs: dict | None = None,
           used: set[str] | None = None) -> str:
    """The expression as CUDA C++ computing in `dtype` (float32 or float64), operand k read as
    the C++ expression args[k]; `used` collects the preamble helpers it calls."""
    attrs = attrs or {}
    if not dtype.is_float:
        raise ValueError(f"a kernel computes in float32 or float64, not {dtype}")
    fp32 = dtype is DType.F32

    def arg_text(k: int) -> tuple[str, int]:
        text = args[k]
        simple = re.fullmatch(r"[A-Za-z_]\w*|\d+(\.\d*)?([eE][+-]?\d+)?f?|INFINITY|NAN", text)
        return text, (_ATOM_PREC if simple else 0)

    def show(tree, ctx_prec: int, right: bool = False) -> str:
        text, prec = emit(tree)
        # (also where C needs none but a reader would: a comparison of comparisons, && in ||)
        mixed = (ctx_prec in (3, 4) and prec in (3, 4)) or (ctx_prec == 1 and prec == 2)
        if prec < ctx_prec or mixed or (right and prec == ctx_prec and prec != _UNARY_PREC):
            return f"({text})"
        return text

    def emit(tree) -> tuple[str, int]:
        kind = tree[0]
        if kind == "num":
            return literal(float(tree[1]), dtype), _ATOM_PREC
        if kind == "hole":
            name = tree[1]
            if name.isdigit():
                return arg_text(int(name))
            value = attrs[name]
            if isinstance(value, DType):
                return CTYPES[value], _ATOM_PREC
            return literal(value, dtype), _ATOM_PREC
        if kind == "name":
            return tree[1], _ATOM_PREC
        if kind == "unary":
            inner = show(tree[2], _UNARY_PREC)
            return f"{tree[1]}{' ' if inner.startswith(tree[1]) else ''}{inner}", _UNARY_PREC
        if kind == "binary":
            prec = _PREC[tree[1]]
            return f"{show(tree[2], prec)} {tree[1]} {show(tree[3], prec, right=True)}", prec
        fn, fargs = tree[1], tree[2]
        if fn == "select":
            c, a, b = (show(x, 1) for x in fargs)
            return f"{c} ? {a} : {b}", 0
        if fn == "cast":
            target = emit(fargs[1])[0]
            return f"({target})({show(fargs[0], 0)})", _UNARY_PREC
        if fn not in FUNCTIONS:
            raise ValueError(f"{fn} has no CUDA C++ form here (the CuPy backend calls it outside a kernel)")
        name = FUNCTIONS[fn][0 if fp32 else 1]
        if used is not None and name in HELPERS:
            used.add(name)
        return f"{name}({', '.join(show(x, 0) for x in fargs)})", _ATOM_PREC

    return emit(parse(template))[0]


def preamble(used) -> str:
    """The helpers an operation calls, for a kernel's preamble."""
    return "\n".join(HELPERS[name] for name in sorted(used))
