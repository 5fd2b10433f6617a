"""Special functions (scipy.special semantics): the error function family, the gamma family,
xlogy/xlog1py, logit, the normal CDF and its log, modified Bessel functions of order 0 and 1
(also exponentially scaled) and Bessel functions of the first kind of order 0 and 1.

NumPy has none of them, so a generated module that uses one imports `scipy.special` as
`_special` (CuPy: `cupyx.scipy.special`), and only then: the SPECIAL helper is an import.
The derivatives are the closed forms, in forms that stay finite where the value does:
log_ndtr' = exp(-x^2/2 - log_ndtr(x)) / sqrt(2 pi) (not the ratio, 0/0 below x = -38),
i1'(x) = i0(x) - i1(x)/x with its limit 1/2 at 0, and the like. xlogy and xlog1py are 0
where x = 0, with PyTorch's derivatives there (0 in x; x / y in y).
"""
from __future__ import annotations

import math

from ..core.diagnostics import UserError
from ..core.primitive import PREC_POSTFIX, Cost, Expr, Helper, Primitive, register
from . import algebra as B
from .common import need_float, sym_map, sympy_function
from .rule_shapes import binary, float_coerce, from_partials, unary


def _sympy():
    import sympy

    return sympy


def _c(value, like):
    return B.like_const(value, like)


def _f(name, *args, **attrs):
    return B.apply(name, *args, **attrs)


def _scipy():
    import scipy.special

    return scipy.special


SPECIAL = Helper("special", "import scipy.special as _special  # the special functions NumPy lacks\n",
                 variants=(("cupy", "import cupyx.scipy.special as _special  # what NumPy's scipy.special is\n"),))
COSTLY = dict(cost=Cost.COSTLY, helpers=(SPECIAL,), quiet=True)


def special_call(fn: str, *attr_names: str):
    """Emit `_special.fn(args..., attrs...)` (the module imports scipy.special as _special)."""

    def emit(ctx, args, node):
        ctx.helper("special")
        parts = [str(node.attr(k)) for k in attr_names] + [a.text for a in args]
        return Expr(f"_special.{fn}({', '.join(parts)})", PREC_POSTFIX)

    return emit


def _fold(fn):
    def fold(*args):
        return getattr(_scipy(), fn)(*args)

    return fold


_SQRT_PI = math.sqrt(math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _gauss(x, scale):
    """scale * exp(-x^2)."""
    return B.mul(_c(scale, x), _f("exp", B.neg(B.square(x))))


def _at_zero(x, limit, value):
    """value, or limit where x == 0 (a removable singularity such as i1(x)/x)."""
    zero = B.apply("eq", x, _c(0, x))
    safe_value = value(B.where(zero, _c(1, x), x))
    return B.where(zero, _c(limit, x), safe_value)


SCIPY_NAMES = {"lgamma": "gammaln"}  # the language's name -> scipy.special's


def _unary(name, deriv, meaning, doc, scalar, domain="normal"):
    fn = SCIPY_NAMES.get(name, name)
    register(unary(name, special_call(fn), deriv, meaning, _fold(fn), domain=domain, doc=doc, scalar=scalar,
                   **COSTLY))


# ---- the error function family ---------------------------------------------------------------------
_unary("erf", lambda x, y: _gauss(x, 2 / _SQRT_PI), lambda x: _sympy().erf(x),
       "the error function; derivative 2/sqrt(pi) exp(-x^2)", "erf({0})")
_unary("erfc", lambda x, y: _gauss(x, -2 / _SQRT_PI), lambda x: _sympy().erfc(x),
       "1 - erf(x), accurate where erf(x) is near 1", "erfc({0})")
_unary("erfinv", lambda x, y: B.mul(_c(_SQRT_PI / 2, x), _f("exp", B.square(y))), lambda x: _sympy().erfinv(x),
       "the inverse of erf on (-1, 1); derivative sqrt(pi)/2 exp(erfinv(x)^2)", "erfinv({0})", "unit")
_unary("erfcx", lambda x, y: B.sub(B.mul(B.mul(_c(2, x), x), y), _c(2 / _SQRT_PI, x)),
       lambda x: _sympy().exp(x ** 2) * _sympy().erfc(x),
       "exp(x^2) erfc(x) without overflow; derivative 2 x erfcx(x) - 2/sqrt(pi)", "erfcx({0})")
_unary("ndtr", lambda x, y: _gauss_half(x), lambda x: (1 + _sympy().erf(x / _sympy().sqrt(2))) / 2,
       "the standard normal CDF; derivative the normal density", "ndtr({0})")
_unary("log_ndtr", lambda x, y: B.mul(_c(_INV_SQRT_2PI, x),
                                      _f("exp", B.sub(B.neg(B.mul(_c(0.5, x), B.square(x))), y))),
       lambda x: _sympy().log((1 + _sympy().erf(x / _sympy().sqrt(2))) / 2),
       "log of the normal CDF, accurate far into the left tail; derivative exp(-x^2/2 - log_ndtr(x)) / "
       "sqrt(2 pi)", "log_ndtr({0})")


def _gauss_half(x):
    """The standard normal density exp(-x^2/2) / sqrt(2 pi)."""
    return B.mul(_c(_INV_SQRT_2PI, x), _f("exp", B.neg(B.mul(_c(0.5, x), B.square(x)))))


# ---- the gamma family --------------------------------------------------------------------------------
_unary("lgamma", lambda x, y: _f("digamma", x), lambda x: _sympy().loggamma(x),
       "log |gamma(x)| (scipy.special.gammaln); derivative digamma", "lgamma({0})", "positive")
_unary("digamma", lambda x, y: _f("polygamma", x, n=1), lambda x: _sympy().polygamma(0, x),
       "the derivative of lgamma (psi); derivative polygamma(1, x)", "digamma({0})", "positive")


def _polygamma_infer(types, attrs):
    need_float(types[0], "`polygamma`")
    if attrs["n"] < 0:
        raise UserError(f"`polygamma` needs an order n >= 0, got {attrs['n']}", arg="n")
    return types[0]


def _polygamma_vjp(ctx, node, ct, needs):
    d = _f("polygamma", node.inputs[0], n=node.attr("n") + 1)
    return [B.ct_map(ct, lambda g: B.mul(g, d))]


def _polygamma_jvp(ctx, node, ts):
    d = _f("polygamma", node.inputs[0], n=node.attr("n") + 1)
    return None if ts[0] is None else B.ct_map(ts[0], lambda g: B.mul(g, d))


def _polygamma_meaning(ctx, args, node):
    return sym_map(lambda v: _sympy().polygamma(node.attr("n"), v))(ctx, args, node)


register(Primitive(
    "polygamma", "elementwise", _polygamma_infer, special_call("polygamma", "n"), _polygamma_vjp, _polygamma_jvp,
    _polygamma_meaning, coerce=lambda args, attrs: [B.to_float(args[0])], elementwise=True, scalar="polygamma({n}, {0})",
    doc="the n-th derivative of digamma; derivative polygamma(n + 1, x)",
    examples=((("f64[2, 3]",), {"n": 1}, {0: "positive"}), (("f64[3]",), {"n": 2}, {0: "positive"})), **COSTLY,
))

# ---- logit ---------------------------------------------------------------------------------------------
_unary("logit", lambda x, y: B.div(_c(1, x), B.mul(x, B.sub(_c(1, x), x))),
       lambda x: _sympy().log(x / (1 - x)), "log(x / (1 - x)) on (0, 1); derivative 1 / (x (1 - x))",
       "log({0} / (1 - {0}))", "unit")

# ---- Bessel functions ------------------------------------------------------------------------------------
_unary("i0", lambda x, y: _f("i1", x), lambda x: _sympy().besseli(0, x),
       "the modified Bessel function of order 0; derivative i1", "i0({0})")
_unary("i1", lambda x, y: _at_zero(x, 0.5, lambda s: B.sub(_f("i0", s), B.div(_f("i1", s), s))),
       lambda x: _sympy().besseli(1, x), "the modified Bessel function of order 1; derivative i0(x) - i1(x)/x, "
       "1/2 at 0", "i1({0})")
_unary("i0e", lambda x, y: B.sub(_f("i1e", x), B.mul(_f("sign", x), y)),
       lambda x: _sympy().exp(-_sympy().Abs(x)) * _sympy().besseli(0, x),
       "exp(-|x|) i0(x) without overflow; derivative i1e(x) - sign(x) i0e(x)", "i0e({0})")
_unary("i1e", lambda x, y: _at_zero(x, 0.5, lambda s: B.sub(_f("i0e", s),
                                                            B.mul(_f("i1e", s), B.add(_f("sign", s),
                                                                                     B.div(_c(1, s), s))))),
       lambda x: _sympy().exp(-_sympy().Abs(x)) * _sympy().besseli(1, x),
       "exp(-|x|) i1(x); derivative i0e(x) - i1e(x) (sign(x) + 1/x), 1/2 at 0", "i1e({0})")
_unary("j0", lambda x, y: B.neg(_f("j1", x)), lambda x: _sympy().besselj(0, x),
       "the Bessel function of the first kind of order 0; derivative -j1", "j0({0})")
_unary("j1", lambda x, y: _at_zero(x, 0.5, lambda s: B.sub(_f("j0", s), B.div(_f("j1", s), s))),
       lambda x: _sympy().besselj(1, x), "the Bessel function of the first kind of order 1; derivative "
       "j0(x) - j1(x)/x, 1/2 at 0", "j1({0})")


# ---- xlogy, xlog1py ----------------------------------------------------------------------------------------
def _xlog(name, log_name, shift):
    """x * log(y + shift), 0 where x == 0 (also where the log is -inf or NaN)."""

    def partials(node):
        x, y = node.inputs
        nonzero = B.apply("ne", x, _c(0, x))
        arg = y if not shift else B.add(y, _c(1, y))
        dx = B.where(nonzero, _f(log_name, y), _c(0, node))  # PyTorch: xlogy(x != 0, y)
        dy = B.div(x, arg)
        return dx, dy

    def number(x, y):
        import mpmath

        if x == 0 and not mpmath.isnan(y):
            return mpmath.mpf(0)
        v = y + shift
        return x * (mpmath.log(v) if v >= 0 else mpmath.nan)

    def meaning(x, y):
        def fdiff(sp, args, i):
            a, b = args
            if i == 0:
                return sp.Piecewise((0, sp.Eq(a, 0)), (sp.log(b + shift), True))
            return a / (b + shift)

        return sympy_function(name, number, fdiff)(x, y)

    vjp, jvp = from_partials(partials)
    return binary(name, special_call(name), vjp, jvp, meaning, _fold(name),
                  coerce=float_coerce,
                  doc=f"x * log({'1 + ' if shift else ''}y), 0 where x == 0; derivatives "
                      f"log({'1 + ' if shift else ''}y) (0 where x == 0) and x / ({'1 + ' if shift else ''}y)",
                  domains={1: "positive"}, scalar=f"select({{0}} == 0, 0, {{0}} * {log_name}({{1}}))", **COSTLY)


register(_xlog("xlogy", "log", 0))
register(_xlog("xlog1py", "log1p", 1))
