"""More elementwise math: inverse trigonometric and hyperbolic functions, log2/log10/exp2, cbrt,
square, reciprocal, rounding, arctan2, hypot, mod and fmod (NumPy semantics, PyTorch's
derivatives; docs/language.md lists the conventions).

The derivative forms avoid overflow where the textbook one has it: arcsinh' is 1 / hypot(x, 1)
(not 1 / sqrt(x^2 + 1), which is 0 from |x| = 1e154 in f64), arccosh' divides by
sqrt(x - 1) * sqrt(x + 1). Where a derivative is a convention at a point (hypot and arctan2 at
the origin, the jumps of rounding and mod), the SymPy meaning says so through `fdiff`
(common.sympy_function), so the check compares the convention, not SymPy's NaN.
"""
from __future__ import annotations

import math

import numpy as np

from ..core.primitive import Cost, Special, register
from . import algebra as B
from .common import sympy_function, xp_call
from .rule_shapes import binary, common_coerce, float_coerce, from_partials, unary


def _sympy():
    import sympy

    return sympy


def _c(value, like):
    return B.like_const(value, like)


def _f(name, *args):
    return B.apply(name, *args)


COSTLY = dict(cost=Cost.COSTLY)
AT_0 = (Special("operand 0", values=((0, 0),)),)

# ---- inverse trigonometric and hyperbolic --------------------------------------------------------
def _one_minus_square(x):
    """(1 - x)(1 + x): 1 - x^2 without cancellation near |x| = 1."""
    return B.mul(B.sub(_c(1, x), x), B.add(_c(1, x), x))


register(unary("arcsin", xp_call("arcsin"), lambda x, y: B.div(_c(1, x), _f("sqrt", _one_minus_square(x))),
               lambda x: _sympy().asin(x), np.arcsin, domain="unit", quiet=True,
               doc="inverse sine on [-1, 1]; derivative 1 / sqrt(1 - x^2), inf at +-1", scalar="asin({0})",
               **COSTLY))
register(unary("arccos", xp_call("arccos"), lambda x, y: B.neg(B.div(_c(1, x), _f("sqrt", _one_minus_square(x)))),
               lambda x: _sympy().acos(x), np.arccos, domain="unit", quiet=True,
               doc="inverse cosine on [-1, 1]; derivative -1 / sqrt(1 - x^2), -inf at +-1", scalar="acos({0})",
               **COSTLY))
register(unary("arctan", xp_call("arctan"), lambda x, y: B.div(_c(1, x), B.add(_c(1, x), B.square(x))),
               lambda x: _sympy().atan(x), np.arctan, doc="inverse tangent; derivative 1 / (1 + x^2)",
               scalar="atan({0})", **COSTLY))
register(unary("sinh", xp_call("sinh"), lambda x, y: _f("cosh", x), lambda x: _sympy().sinh(x), np.sinh,
               quiet=True, scalar="sinh({0})", **COSTLY))
register(unary("cosh", xp_call("cosh"), lambda x, y: _f("sinh", x), lambda x: _sympy().cosh(x), np.cosh,
               quiet=True, scalar="cosh({0})", **COSTLY))
register(unary("arcsinh", xp_call("arcsinh"), lambda x, y: B.div(_c(1, x), _f("hypot", x, _c(1, x))),
               lambda x: _sympy().asinh(x), np.arcsinh, doc="inverse sinh; derivative 1 / hypot(x, 1)",
               scalar="asinh({0})", **COSTLY))
register(unary("arccosh", xp_call("arccosh"),
               lambda x, y: B.div(_c(1, x), B.mul(_f("sqrt", B.sub(x, _c(1, x))), _f("sqrt", B.add(x, _c(1, x))))),
               lambda x: _sympy().acosh(x), np.arccosh, domain="above1", quiet=True,
               doc="inverse cosh on [1, inf); derivative 1 / (sqrt(x - 1) sqrt(x + 1)), inf at 1",
               scalar="acosh({0})", **COSTLY))
register(unary("arctanh", xp_call("arctanh"), lambda x, y: B.div(_c(1, x), _one_minus_square(x)),
               lambda x: _sympy().atanh(x), np.arctanh, domain="unit", quiet=True,
               doc="inverse tanh on (-1, 1); derivative 1 / (1 - x^2)", scalar="atanh({0})", **COSTLY))

# ---- logarithms and powers in other bases ----------------------------------------------------------
_LN2, _LN10 = math.log(2), math.log(10)
register(unary("log2", xp_call("log2"), lambda x, y: B.div(_c(1 / _LN2, x), x),
               lambda x: _sympy().log(x, 2), np.log2, domain="positive", quiet=True,
               doc="base-2 logarithm; derivative 1 / (x ln 2)", scalar="log2({0})", special=AT_0, **COSTLY))
register(unary("log10", xp_call("log10"), lambda x, y: B.div(_c(1 / _LN10, x), x),
               lambda x: _sympy().log(x, 10), np.log10, domain="positive", quiet=True,
               doc="base-10 logarithm; derivative 1 / (x ln 10)", scalar="log10({0})", special=AT_0, **COSTLY))
register(unary("exp2", xp_call("exp2"), lambda x, y: B.mul(y, _c(_LN2, x)), lambda x: 2 ** x, np.exp2,
               quiet=True, doc="2 ** x; derivative 2 ** x ln 2", scalar="exp2({0})", **COSTLY))
def _cbrt_number(v):
    import mpmath

    return mpmath.sign(v) * mpmath.cbrt(abs(v))


def _cbrt_meaning(x):
    """The real cube root; SymPy's cbrt is the principal (complex) one for negative x."""
    def fdiff(sp, args, i):
        return 1 / (3 * _cbrt_meaning(args[0]) ** 2)

    return sympy_function("cbrt", _cbrt_number, fdiff)(x)


register(unary("cbrt", xp_call("cbrt"), lambda x, y: B.div(_c(1, x), B.mul(_c(3, x), B.square(y))),
               lambda x: _cbrt_meaning(x), np.cbrt, quiet=True,
               doc="real cube root (negative for negative x); derivative 1 / (3 cbrt(x)^2), inf at 0",
               scalar="cbrt({0})", special=AT_0, **COSTLY))
register(unary("square", xp_call("square"), lambda x, y: B.mul(_c(2, x), x), lambda x: x * x, np.square,
               float_only=False, doc="x * x; integers stay integers", scalar="{0} * {0}"))
register(unary("reciprocal", xp_call("reciprocal"), lambda x, y: B.neg(B.square(y)), lambda x: 1 / x,
               np.reciprocal, quiet=True, doc="1 / x (integers as floats: NumPy's integer reciprocal "
               "truncates); derivative -1 / x^2", scalar="1 / {0}", special=AT_0))


# ---- rounding: piecewise constant, derivative 0 (PyTorch) -------------------------------------------
def _round_half_even(v):
    import mpmath

    f = mpmath.floor(v)
    d = v - f
    return f + 1 if d > 0.5 or (d == 0.5 and f % 2 == 1) else f


def _trunc_number(v):
    import mpmath

    return mpmath.floor(v) if v >= 0 else mpmath.ceil(v)


def _finite_only(f):
    def numeric(v):
        import mpmath

        return f(v) if mpmath.isfinite(v) else v

    return numeric


def _mpmath(name):
    def f(v):
        import mpmath

        return getattr(mpmath, name)(v)

    return f


_ROUNDING = {"floor": _mpmath("floor"), "ceil": _mpmath("ceil"), "trunc": _trunc_number, "round": _round_half_even}


def rounded(name, x):
    """The SymPy meaning of a rounding function: piecewise constant, so its derivative is 0."""
    return sympy_function(name, _finite_only(_ROUNDING[name]), lambda sp, args, i: sp.Integer(0))(x)


for _name, _np, _scalar, _doc in (
    ("floor", np.floor, "floor({0})", "the largest integer <= x"),
    ("ceil", np.ceil, "ceil({0})", "the smallest integer >= x"),
    ("trunc", np.trunc, "trunc({0})", "x rounded towards 0"),
    ("round", np.round, "rint({0})", "x rounded to the nearest integer, halves to even (NumPy, PyTorch)"),
):
    register(unary(_name, xp_call(_name), lambda x, y: None, lambda x, _name=_name: rounded(_name, x), _np,
                   float_only=False, scalar=_scalar,
                   doc=f"{_doc}; derivative 0 everywhere (PyTorch), also at the jumps; integers unchanged"))


# ---- binary ---------------------------------------------------------------------------------------------
def _at_origin(a, b):
    return B.apply("logical_and", B.apply("eq", a, _c(0, a)), B.apply("eq", b, _c(0, b)))


def _hypot_partials(node):
    a, b = node.inputs
    origin = _at_origin(a, b)
    safe = B.where(origin, _c(1, node), node)  # no 0 / 0 at the origin, where the derivative is 0
    zero = _c(0, node)
    return (B.where(origin, zero, B.div(a, safe)), B.where(origin, zero, B.div(b, safe)))


def _hypot_meaning(a, b):
    def fdiff(sp, args, i):
        x, y = args
        h = sp.sqrt(x * x + y * y)
        return sp.Piecewise((0, sp.Eq(x, 0) & sp.Eq(y, 0)), ((x if i == 0 else y) / h, True))

    return sympy_function("hypot", _hypot_number, fdiff)(a, b)


def _hypot_number(a, b):
    import mpmath

    return mpmath.hypot(a, b) if mpmath.isfinite(a) and mpmath.isfinite(b) else abs(a) + abs(b)


_hypot_vjp, _hypot_jvp = from_partials(_hypot_partials)
register(binary("hypot", xp_call("hypot"), _hypot_vjp, _hypot_jvp, _hypot_meaning, np.hypot,
                coerce=float_coerce,
                doc="sqrt(a^2 + b^2) without overflow; derivative (a, b) / hypot(a, b), 0 at the origin "
                    "(torch.hypot gives NaN there, torch.linalg.vector_norm 0)",
                scalar="hypot({0}, {1})", special=(Special("origin", values=((0, 0), (1, 0))),), **COSTLY))


def _atan2_partials(node):
    y, x = node.inputs
    r2 = B.add(B.square(x), B.square(y))
    origin = _at_origin(y, x)
    safe = B.where(origin, _c(1, node), r2)
    zero = _c(0, node)
    return (B.where(origin, zero, B.div(x, safe)), B.where(origin, zero, B.neg(B.div(y, safe))))


def _atan2_meaning(y, x):
    def fdiff(sp, args, i):
        yy, xx = args
        r2 = xx * xx + yy * yy
        return sp.Piecewise((0, sp.Eq(xx, 0) & sp.Eq(yy, 0)), ((xx if i == 0 else -yy) / r2, True))

    def evaluate(sp, yy, xx):
        return sp.atan2(yy, xx) if (yy.is_number and xx.is_number) else None

    return sympy_function("arctan2", _atan2_number, fdiff, evaluate)(y, x)


def _atan2_number(y, x):
    import mpmath

    return mpmath.atan2(y, x)


_atan2_vjp, _atan2_jvp = from_partials(_atan2_partials)
register(binary("arctan2", xp_call("arctan2"), _atan2_vjp, _atan2_jvp, _atan2_meaning, np.arctan2,
                coerce=float_coerce,
                doc="the angle of the point (x, y): arctan2(y, x); derivatives (x, -y) / (x^2 + y^2), "
                    "0 at the origin (PyTorch)",
                scalar="atan2({0}, {1})", special=(Special("origin", values=((0, 0), (1, 0))),), **COSTLY))


# mod (np.mod, Python's %: the sign of b) and fmod (C's: the sign of a). As functions of a they
# are a - b * floor(a / b) and a - b * trunc(a / b): derivatives 1 and -floor(a / b) (or -trunc),
# the quotient held constant, as PyTorch's remainder and fmod.
def _mod_like(name, np_fn, quotient, scalar, doc):
    def partials(node):
        a, b = node.inputs
        if not node.dtype.is_float:
            return (None, None)
        q = _f(quotient, B.div(a, b))
        return (B.like_const(1, node), B.neg(q))

    def number(a, b):
        import mpmath

        if not mpmath.isfinite(a) or mpmath.isnan(b) or b == 0:
            return mpmath.nan
        if mpmath.isinf(b):  # a itself, or (mod, signs differ) b
            return a if name == "fmod" or a == 0 or (a > 0) == (b > 0) else b
        return a - b * _ROUNDING[quotient](a / b)

    def meaning(a, b):
        def fdiff(sp, args, i):
            x, y = args
            if i == 0:
                return sp.Integer(1)
            return -rounded(quotient, x / y)

        return sympy_function(name, number, fdiff)(a, b)

    vjp, jvp = from_partials(partials)
    return binary(name, xp_call(name), vjp, jvp, meaning, np_fn, coerce=common_coerce, symbol=name,
                  doc=doc, domains={1: "positive"}, quiet=True, scalar=scalar)


register(_mod_like("mod", np.mod, "floor",
                   "select((fmod({0}, {1}) != 0) && ((fmod({0}, {1}) < 0) != ({1} < 0)), fmod({0}, {1}) + {1}, "
                   "fmod({0}, {1}))",
                   "a % b: the remainder with the sign of b (NumPy, Python); derivatives 1 and -floor(a / b)"))
register(_mod_like("fmod", np.fmod, "trunc", "fmod({0}, {1})",
                   "the remainder with the sign of a (C); derivatives 1 and -trunc(a / b)"))

