"""Shared pieces of primitive records: type-rule helpers, emission helpers, SymPy helpers."""
from __future__ import annotations

import enum
from typing import Callable, Sequence

import numpy as np

from ..core.diagnostics import UserError
from ..core.primitive import PREC_ATOM, PREC_POSTFIX, Expr
from ..core.types import BroadcastError, DType, TensorType, broadcast_shapes


# ---- type rules --------------------------------------------------------------------------
def elementwise_type(types: Sequence[TensorType], dtype: DType | None = None) -> TensorType:
    """Broadcast shapes; the dtype is the (already coerced) operands' unless given."""
    try:
        shape = broadcast_shapes(*[t.shape for t in types])
    except BroadcastError:
        raise UserError(broadcast_message(types)) from None
    weak = all(t.weak for t in types)
    return TensorType(dtype or types[-1].dtype, shape, weak)


def broadcast_message(types: Sequence[TensorType]) -> str:
    """Name both shapes, the axis and the two sizes that clash."""
    from ..core.types import dim_text

    rank = max(t.rank for t in types)
    where = ("on the left", "on the right") if len(types) == 2 else tuple(f"in operand {i + 1}" for i in
                                                                          range(len(types)))
    for axis in range(-1, -rank - 1, -1):
        seen = [(i, t.shape[axis]) for i, t in enumerate(types) if t.rank >= -axis and t.shape[axis] != 1]
        for (i, a), (j, b) in zip(seen, seen[1:]):
            if a != b:
                shapes = " and ".join(map(str, types)) if len(types) == 2 else ", ".join(map(str, types))
                return (f"cannot broadcast {shapes}: axis {axis} has size {dim_text(a)} {where[i]} and "
                        f"{dim_text(b)} {where[j]} (shapes align from the right; sizes must match or be 1)")
    return "cannot broadcast " + ", ".join(map(str, types))  # pragma: no cover


def need_float(t: TensorType, what: str, arg: int = 0) -> None:
    if not t.dtype.is_float:
        raise UserError(f"{what} needs a floating-point operand, got {t}", arg=arg)


def no_bool(types: Sequence[TensorType], what: str) -> None:
    if all(t.dtype == DType.BOOL for t in types):
        raise UserError(
            f"`{what}` is not defined on bool values; convert first, e.g. with i64(...) or f32(...)"
        )


def normalize_axes(axes, rank: int, what: str = "axis", arg: str | int = "axis") -> tuple[int, ...]:
    """An int, a list of ints or None (all axes) -> sorted tuple of non-negative axes."""
    if axes is None:
        return tuple(range(rank))
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise UserError(f"{what} {a} is out of range for a value of rank {rank}", arg=arg)
        a %= rank
        if a in out:
            raise UserError(f"{what} {a} is repeated", arg=arg)
        out.append(a)
    return tuple(sorted(out))


def normalize_axis(axis: int, rank: int, arg: str | int = "axis") -> int:
    if not -rank <= axis < rank:
        raise UserError(f"axis {axis} is out of range for a value of rank {rank}", arg=arg)
    return axis % rank


# ---- emission --------------------------------------------------------------------------------
def xp_call(fn: str, *extra: str) -> Callable:
    """Emit `xp.fn(a, b, ..., *extra)`."""

    def emit(ctx, args: list[Expr], node) -> Expr:
        parts = [a.text for a in args] + [e.format(**node.attr_dict) for e in extra]
        return Expr(f"{ctx.xp}.{fn}({', '.join(parts)})", PREC_POSTFIX)

    return emit


def helper_call(helper: str, *attr_names: str) -> Callable:
    """Emit a call of a helper function defined in the generated module's prelude."""

    def emit(ctx, args: list[Expr], node) -> Expr:
        name = ctx.helper(helper)
        parts = [a.text for a in args] + [f"{k}={ctx.literal(node.attr(k))}" for k in attr_names]
        return Expr(f"{name}({', '.join(parts)})", PREC_POSTFIX)

    return emit


def infix(op: str, prec: int, right_assoc: bool = False) -> Callable:
    def emit(ctx, args: list[Expr], node) -> Expr:
        left = args[0].at(prec + 1 if right_assoc else prec)
        right = args[1].at(prec if right_assoc else prec + 1)
        return Expr(f"{left} {op} {right}", prec)

    return emit


def axis_kw(ctx, node) -> str:
    axes = node.attr("axes")
    parts = []
    if axes is not None and len(axes) != node.inputs[0].type.rank:
        parts.append(f"axis={axes[0] if len(axes) == 1 else tuple(axes)}")
    if node.attr("keepdims"):
        parts.append("keepdims=True")
    return ", ".join(parts)


class Combine(enum.Enum):
    """How the threads' partial results of a reduction over a loop's rows are combined (the
    names codegen's _blocks helper understands)."""

    SUM = "sum"
    MAX = "max"
    MIN = "min"



# The functions a scalar expression may call (besides + - * /, unary -, comparisons, && || !):
# each as C's (fabs is |x|, max/min propagate NaN as NumPy's maximum/minimum do).
SCALAR_FUNCTIONS = ("exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "tanh", "fabs", "sign",
                    "max", "min", "pow", "select", "cast", "asin", "acos", "atan", "atan2", "sinh", "cosh",
                    "asinh", "acosh", "atanh", "hypot", "log2", "log10", "exp2", "cbrt", "floor", "ceil",
                    "trunc", "rint", "fmod",
                    # special functions: C99 has erf, erfc, lgamma (and POSIX j0, j1); a compiled
                    # backend takes the others from its library (scipy.special's names)
                    "erf", "erfc", "lgamma", "j0", "j1", "erfinv", "erfcx", "ndtr", "log_ndtr", "digamma",
                    "polygamma", "i0", "i1", "i0e", "i1e")


class Scalar:
    """The scalar language's words that code outside primitives/ names (kernels/program.py and
    the kernel writers): several are also op names, which only primitives/ may spell."""

    CAST = "cast"      # cast(a): to the expression's dtype
    SELECT = "select"  # select(c, a, b): c ? a : b
    MAX = "max"        # NaN-propagating, as NumPy's maximum
    MIN = "min"
    SIGN = "sign"
    FABS = "fabs"
    EXP = "exp"
    LOG = "log"


# scalar function -> its numba text over {0}, {1} ({t}: the numpy type name of the result)
NUMBA_FUNCTIONS = {  # the numba backend's text of each (kernels/numba_writer.py; one table)
    "exp": "np.exp({0})", "log": "np.log({0})", "log1p": "np.log1p({0})", "expm1": "np.expm1({0})",
    "sqrt": "np.sqrt({0})", "sin": "np.sin({0})", "cos": "np.cos({0})", "tan": "np.tan({0})",
    "tanh": "np.tanh({0})", "fabs": "np.abs({0})", "sign": "np.sign({0})",
    "max": "np.maximum({0}, {1})", "min": "np.minimum({0}, {1})",  # NaN in, NaN out (as NumPy)
    "pow": "np.power({0}, {1})", "asin": "np.arcsin({0})", "acos": "np.arccos({0})", "atan": "np.arctan({0})",
    "atan2": "np.arctan2({0}, {1})", "sinh": "np.sinh({0})", "cosh": "np.cosh({0})", "asinh": "np.arcsinh({0})",
    "acosh": "np.arccosh({0})", "atanh": "np.arctanh({0})", "hypot": "np.hypot({0}, {1})",
    "log2": "np.log2({0})", "log10": "np.log10({0})", "exp2": "np.exp2({0})", "cbrt": "np.cbrt({0})",
    "floor": "np.floor({0})", "ceil": "np.ceil({0})", "trunc": "np.trunc({0})", "rint": "np.rint({0})",
    "fmod": "np.fmod({0}, {1})",
    # (erf, erfc, lgamma: math's float64 functions, cast back to the operand's type)
    "erf": "np.{t}(math.erf({0}))", "erfc": "np.{t}(math.erfc({0}))", "lgamma": "np.{t}(math.lgamma({0}))",
}


# The scalar language in CUDA C++ (the CuPy backend's kernels, codegen/kernels/cuda.py): each
# function as (float32 name, float64 name), so a float32 kernel never computes in double. max,
# min and sign are NumPy's (NaN propagates), which CUDA's max/min are not: helpers of the
# kernel's preamble. Absent: the special functions CUDA lacks or that have no CPU counterpart
# to check them against (erfinv, erfcx, ndtr, ...): cupyx.scipy.special calls outside kernels.
CUDA_FUNCTIONS: dict[str, tuple[str, str]] = {
    **{name: (name + "f", name) for name in (
        "exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "tanh", "asin", "acos", "atan", "atan2",
        "sinh", "cosh", "asinh", "acosh", "atanh", "hypot", "log2", "log10", "exp2", "cbrt", "floor", "ceil",
        "trunc", "rint", "fmod", "pow", "fabs", "erf", "erfc", "lgamma", "j0", "j1")},
    "max": ("_tl_max", "_tl_max"), "min": ("_tl_min", "_tl_min"), "sign": ("_tl_sign", "_tl_sign"),
}
# the scalar language's forms that are C operators, not calls: (text, binds like a C conditional
# (0) or a cast (unary, 7)); {type} is the target's C type
CUDA_FORMS: dict[str, tuple[str, int]] = {"select": ("{0} ? {1} : {2}", 0), "cast": ("({type})({0})", 7)}
# a reduction (kernels/program.py's names) as CuPy's ReductionKernel takes it: reduce_expr, identity
CUDA_REDUCTIONS: dict[str, tuple[str, str]] = {
    "sum": ("a + b", "0"), "prod": ("a * b", "1"), "max": ("_tl_max(a, b)", "-INFINITY"),
    "min": ("_tl_min(a, b)", "INFINITY")}


# ---- SymPy meanings -------------------------------------------------------------------------------
def sym_map(f: Callable) -> Callable:
    """Elementwise SymPy meaning: f applied to broadcast object arrays of SymPy scalars."""

    def meaning(ctx, args: list[np.ndarray], node) -> np.ndarray:
        arrays = np.broadcast_arrays(*[np.asarray(a, dtype=object) for a in args])
        out = np.empty(arrays[0].shape, dtype=object)
        for idx in np.ndindex(out.shape):
            out[idx] = f(*[a[idx] for a in arrays])
        return out

    return meaning


_SYMPY_FUNCTIONS: dict = {}


def sympy_function(name: str, numeric: Callable, fdiff: Callable, evaluate: Callable | None = None):
    """The SymPy function class `name`, made on first use (only the check imports SymPy), for a
    meaning SymPy lacks or whose derivative is a convention somewhere: `numeric(*mpf)` computes
    it (tools/numeric_meanings.py), `fdiff(sp, args, i)` is its derivative in argument i
    (0-based) as sympy.diff will take it, and `evaluate(sp, *args)` may rewrite it (None: it
    stays unevaluated)."""
    cls = _SYMPY_FUNCTIONS.get(name)
    if cls is None:
        import sympy as sp

        def eval_(cls, *args):
            return None if evaluate is None else evaluate(sp, *args)

        def fdiff_(self, argindex=1):
            return fdiff(sp, self.args, argindex - 1)

        cls = type(name, (sp.Function,), {"numeric": staticmethod(numeric), "eval": classmethod(eval_),
                                          "fdiff": fdiff_, "__module__": __name__})
        _SYMPY_FUNCTIONS[name] = cls
    return cls


def numpy_pow_number(a, b):
    """a ** b for two mpmath reals as NumPy computes it for floats: 0 ** b is 0 (b > 0), 1
    (b == 0) or inf (b < 0); a negative a to a fractional power is nan. The SymPy check's
    arithmetic (tools/numeric_meanings.py) computes every power with it."""
    import mpmath

    a, b = mpmath.mpf(a), mpmath.mpf(b)
    if b == 0:
        return mpmath.mpf(1)  # also nan ** 0 and 0 ** 0
    if mpmath.isnan(a) or mpmath.isnan(b):
        return mpmath.mpf(1) if a == 1 else mpmath.nan
    if a == 0:
        return mpmath.mpf(0) if b > 0 else mpmath.inf
    if a < 0 and mpmath.isfinite(b) and b != mpmath.floor(b):
        return mpmath.nan
    if mpmath.isfinite(a) and mpmath.isfinite(b) and abs(b) > 2 ** 64 and b == mpmath.floor(b):
        # a huge integer exponent (a power tower): mpmath would write b out as an integer and
        # square that many times (minutes, or MemoryError); exp(b log|a|) with the sign of its
        # parity instead (mpmath keeps the mantissa odd: b is odd when its exponent is 0), and
        # inf or 0 past e ** 2 ** 40, far beyond every float dtype
        with mpmath.extraprec(min(b._mpf_[2] + b._mpf_[3], 1000)):
            y = b * mpmath.log(abs(a))
            out = mpmath.exp(y) if abs(y) < 2 ** 40 else (mpmath.inf if y > 0 else mpmath.mpf(0))
        return -out if a < 0 and b._mpf_[2] == 0 else +out
    out = mpmath.power(a, b)
    return out.real if isinstance(out, mpmath.mpc) else out


__all__ = ["PREC_ATOM", "Expr"]
