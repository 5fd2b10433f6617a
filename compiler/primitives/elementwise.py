"""Elementwise primitives: unary math, arithmetic, comparisons, where, clip, casts.

Unary ops are declared by their derivative (in terms of the input x and the output y);
rule_shapes.unary turns that into the VJP (cotangent times derivative, kept under any mask,
see algebra.ct_map) and the JVP (tangent times derivative). Binary ops broadcast, so their
VJPs end in algebra.unbroadcast; `mul` is bilinear and `add`/`sub` are linear.

Each record's `scalar` is the op as a C-like scalar expression (core/primitive.py,
SCALAR_FUNCTIONS), for compiled backends; tests/test_primitive_table.py evaluates every one
against the NumPy emission.
"""
from __future__ import annotations

import numpy as np

from ..core.diagnostics import UserError
from ..core.primitive import (
    PREC_ADD,
    PREC_CMP,
    PREC_MUL,
    PREC_POSTFIX,
    PREC_POW,
    PREC_UNARY,
    Cost,
    Expr,
    Helper,
    Loop,
    Primitive,
    Special,
    register,
)
from ..core.types import DType, TensorType
from . import algebra as B
from .common import elementwise_type, helper_call, infix, no_bool, numpy_pow_number, sym_map, xp_call
from .rule_shapes import (
    arith_infer,
    bilinear,
    binary,
    binary_examples,
    common_coerce,
    float_coerce,
    fit,
    linear,
    nondifferentiable,
    unary,
)


def _sympy():
    import sympy

    return sympy


def _c(value, like):
    return B.like_const(value, like)


def _sigmoid_np(x):
    return 1.0 / (1.0 + np.exp(-x))


COSTLY = dict(cost=Cost.COSTLY)

SIGMOID = Helper("sigmoid", '''def _sigmoid(x):
    """1 / (1 + exp(-x)); exp overflows to inf at very negative x, giving exactly 0."""
    with _quiet():
        return 1 / (1 + xp.exp(-x))
''', ("quiet",))

register(unary("exp", xp_call("exp"), lambda x, y: y, lambda x: _sympy().exp(x), np.exp, quiet=True,
               scalar="exp({0})", **COSTLY))
AT_0 = (Special("operand 0", values=((0, 0),)),)

register(unary("log", xp_call("log"), lambda x, y: B.div(_c(1, x), x), lambda x: _sympy().log(x), np.log,
               domain="positive", quiet=True, scalar="log({0})", special=AT_0, **COSTLY))
register(unary("log1p", xp_call("log1p"), lambda x, y: B.div(_c(1, x), B.add(x, _c(1, x))),
               lambda x: _sympy().log(1 + x), np.log1p, doc="log(1 + x), accurate near 0", domain="positive",
               quiet=True, scalar="log1p({0})", special=(Special("operand -1", values=((0, -1),)),), **COSTLY))
register(unary("expm1", xp_call("expm1"), lambda x, y: B.add(y, _c(1, x)),
               lambda x: _sympy().exp(x) - 1, np.expm1, doc="exp(x) - 1, accurate near 0", quiet=True,
               scalar="expm1({0})", **COSTLY))
register(unary("sqrt", xp_call("sqrt"), lambda x, y: B.div(_c(0.5, x), y), lambda x: _sympy().sqrt(x), np.sqrt,
               domain="positive", quiet=True, scalar="sqrt({0})", special=AT_0))
register(unary("sin", xp_call("sin"), lambda x, y: B.apply("cos", x), lambda x: _sympy().sin(x), np.sin,
               scalar="sin({0})", **COSTLY))
register(unary("cos", xp_call("cos"), lambda x, y: B.neg(B.apply("sin", x)), lambda x: _sympy().cos(x), np.cos,
               scalar="cos({0})", **COSTLY))
register(unary("tan", xp_call("tan"), lambda x, y: B.add(_c(1, x), B.square(y)),
               lambda x: _sympy().tan(x), np.tan, domain="unit", quiet=True, scalar="tan({0})", **COSTLY))
register(unary("tanh", xp_call("tanh"), lambda x, y: B.sub(_c(1, x), B.square(y)),
               lambda x: _sympy().tanh(x), np.tanh, scalar="tanh({0})", **COSTLY))
register(unary("sigmoid", helper_call("sigmoid"), lambda x, y: B.mul(y, B.sub(_c(1, x), y)),
               lambda x: 1 / (1 + _sympy().exp(-x)), _sigmoid_np,
               doc="1 / (1 + exp(-x)); no overflow warning at large negative x", quiet=True,
               helpers=(SIGMOID,), scalar="1 / (1 + exp(-{0}))", **COSTLY))
register(unary("softplus", xp_call("logaddexp", "0"), lambda x, y: B.apply("sigmoid", x),
               lambda x: _sympy().log(1 + _sympy().exp(x)), lambda x: np.logaddexp(x, 0),
               doc="log(1 + exp(x)) as logaddexp(x, 0): softplus(800) = 800; derivative sigmoid",
               loop=Loop(ufunc="logaddexp", extra=("0",)), scalar="max({0}, 0) + log1p(exp(-fabs({0})))",
               **COSTLY))
register(unary("abs", xp_call("abs"), lambda x, y: B.apply("sign", x), lambda x: _sympy().Abs(x), np.abs,
               float_only=False, doc="abs'(0) = 0 as in PyTorch", scalar="fabs({0})", special=AT_0))
register(unary("sign", xp_call("sign"), lambda x, y: None, lambda x: _sympy().sign(x), np.sign,
               float_only=False, doc="derivative 0 everywhere (PyTorch)", scalar="sign({0})", special=AT_0))
register(unary("relu", xp_call("maximum", "0"), None,
               lambda x: _sympy().Piecewise((x, x > 0), (0, True)), lambda x: np.maximum(x, 0),
               float_only=False, masked_deriv=lambda x, y: B.apply("gt", y, B.like_const(0, y)),
               doc="max(x, 0); relu'(0) = 0; the mask y > 0 reads the output, so backward keeps only y",
               loop=Loop(ufunc="maximum", extra=("0",), row=True), scalar="max({0}, 0)", special=AT_0))


def _neg_emit(ctx, args, node):
    return Expr(f"-{args[0].at(PREC_UNARY)}", PREC_UNARY)


register(unary("neg", _neg_emit, lambda x, y: B.like_const(-1, x), lambda x: -x, np.negative, float_only=False,
               scalar="-{0}"))


# ---- casts --------------------------------------------------------------------------------------
def _cast_infer(types, attrs):
    return TensorType(attrs["dtype"], types[0].shape, False)


def _cast_emit(ctx, args, node):
    x = node.inputs[0]
    if x.type.weak and x.shape == () and not x.is_literal:  # a loop variable: a Python int, no .astype
        return Expr(f"{ctx.xp}.{node.dtype.numpy_name}({args[0].text})", PREC_POSTFIX)
    return Expr(f"{args[0].at(16)}.astype({ctx.dtype(node.dtype)})", 16)


def _cast_vjp(ctx, node, ct, needs):
    x = node.inputs[0]
    return [B.ct_map(ct, lambda g: B.cast(g, x.dtype))]


def _cast_jvp(ctx, node, ts):
    return None if ts[0] is None or not node.dtype.is_float else B.cast(ts[0], node.dtype)


def _cast_sympy(ctx, args, node):
    sp = _sympy()
    src, dst = node.inputs[0].dtype, node.dtype
    if src == DType.BOOL and dst != DType.BOOL:  # a condition as 1 or 0
        return sym_map(lambda v: sp.Piecewise((1, v), (0, True)))(ctx, args, node)
    if dst == DType.BOOL:
        return sym_map(lambda v: sp.Ne(v, 0))(ctx, args, node)
    if dst.is_float or not src.is_float:
        return args[0]
    return sym_map(lambda v: sp.sign(v) * sp.floor(sp.Abs(v)))(ctx, args, node)  # truncation, as astype


register(linear(
    "cast", "elementwise", _cast_infer, _cast_emit, _cast_vjp, _cast_sympy, tangent=_cast_jvp,
    elementwise=True, doc="dtype conversion; float-to-float casts pass cotangents back", scalar="cast({0}, {dtype})",
    examples=((("f64[3]",), {"dtype": DType.F32}, {}), (("f32[3]",), {"dtype": DType.F64}, {})),
))


# ---- binary arithmetic -------------------------------------------------------------------------------
def _ub(ct, x):
    return B.unbroadcast(ct, x.type)


def _add_vjp(ctx, node, ct, needs):
    a, b = node.inputs
    return [_ub(ct, a) if needs[0] else None, _ub(ct, b) if needs[1] else None]


def _sub_vjp(ctx, node, ct, needs):
    a, b = node.inputs
    return [_ub(ct, a) if needs[0] else None, _ub(B.ct_map(ct, B.neg), b) if needs[1] else None]


def _mul_vjp(ctx, node, ct, needs):
    a, b = node.inputs
    return [
        _ub(B.ct_map(ct, lambda g: B.mul(g, b)), a) if needs[0] else None,
        _ub(B.ct_map(ct, lambda g: B.mul(g, a)), b) if needs[1] else None,
    ]


def _mul_product(node, i, t):
    """mul with operand i replaced by its tangent (a masked tangent stays masked)."""
    a, b = node.inputs
    return B.ct_map(t, lambda g: B.mul(g, b)) if i == 0 else B.ct_map(t, lambda g: B.mul(a, g))


def _div_vjp(ctx, node, ct, needs):
    a, b = node.inputs
    return [
        _ub(B.ct_map(ct, lambda g: B.div(g, b)), a) if needs[0] else None,
        _ub(B.ct_map(ct, lambda g: B.neg(B.div(B.mul(g, node), b))), b) if needs[1] else None,
    ]


def _pow_da(node):
    a, b = node.inputs
    if b.is_const:
        e = b.attr("value")
        if e == 2:
            return B.mul(_c(2, a), a)
        return B.mul(b, B.pow_(a, B.like_const(e - 1, b)))
    return B.mul(b, B.pow_(a, B.sub(b, _c(1, b))))


def _pow_db_mask(node):
    # PyTorch: d/db a**b is 0 where a == 0 and b >= 0 (instead of 0 * log 0 = NaN)
    a, b = node.inputs
    return B.apply("logical_not", B.apply(
        "logical_and", B.apply("eq", a, _c(0, a)), B.apply("ge", b, _c(0, b))))


def _pow_da_part(node, g):
    """g * d/da a**b; PyTorch: 0 where b == 0 (instead of 0 * a**-1, NaN at a == 0): None for a
    literal 0, masked for a tensor b."""
    a, b = node.inputs
    if b.is_const and b.attr("value") == 0:
        return None
    d = _pow_da(node)
    part = B.ct_map(g, lambda g: B.mul(g, d))
    return part if b.is_const else B.masked(B.apply("ne", b, _c(0, b)), part)


def _pow_vjp(ctx, node, ct, needs):
    a, b = node.inputs
    da = db = None
    if needs[0]:
        part = _pow_da_part(node, ct)
        da = None if part is None else _ub(part, a)
    if needs[1]:
        d = B.mul(node, B.apply("log", a))
        db = _ub(B.masked(_pow_db_mask(node), B.ct_map(ct, lambda g: B.mul(g, d))), b)
    return [da, db]


def _pow_jvp(ctx, node, ts):
    ta, tb = ts
    a, b = node.inputs
    out = None
    if ta is not None:
        out = _pow_da_part(node, ta)
    if tb is not None:
        tb_part = B.masked(_pow_db_mask(node), B.ct_map(tb, lambda g: B.mul(g, B.mul(node, B.apply("log", a)))))
        out = tb_part if out is None else B.add(out, tb_part)
    return fit(out, node)


def _pow_coerce(args, attrs):
    a, b = B.common_dtype(args)
    if not a.dtype.is_float and b.is_const and b.attr("value") < 0:
        raise UserError("integers cannot be raised to negative integer powers; use a float, e.g. `2.0 ** -1`")
    return [a, b]


def _pow_exact(a, b):
    """a ** b in Python ints; an exponent past 4096 of a base other than 0 and +-1 is surely too big
    for any dtype (and 2**2**2**2**2**2**2 would never finish)."""
    if abs(a) > 1 and b > 4096:
        return 1 << 4096
    return a ** b if b >= 0 else None


def _lin_jvp(sign_b):
    def jvp(ctx, node, ts):
        ta, tb = ts
        if tb is not None and sign_b < 0:
            tb = B.neg(tb)
        out = ta if tb is None else (tb if ta is None else B.add(ta, tb))
        return fit(out, node)

    return jvp


def _div_jvp(ctx, node, ts):
    a, b = node.inputs
    parts = [
        B.ct_map(ts[0], lambda g: B.div(g, b)) if ts[0] is not None else None,
        B.ct_map(ts[1], lambda g: B.neg(B.div(B.mul(g, node), b))) if ts[1] is not None else None,
    ]
    return fit(B.add_ct(*parts), node)


register(binary("add", infix("+", PREC_ADD), _add_vjp, _lin_jvp(1), lambda a, b: a + b, np.add, symbol="+",
                rule_shape="linear", scalar="{0} + {1}"))
register(binary("sub", infix("-", PREC_ADD), _sub_vjp, _lin_jvp(-1), lambda a, b: a - b, np.subtract, symbol="-",
                rule_shape="linear", scalar="{0} - {1}"))
register(bilinear("mul", "elementwise", arith_infer("*"), infix("*", PREC_MUL), _mul_product, _mul_vjp,
                  sym_map(lambda a, b: a * b), coerce=common_coerce, fold=np.multiply, elementwise=True,
                  scalar="{0} * {1}", examples=binary_examples()))
register(binary("div", infix("/", PREC_MUL), _div_vjp, _div_jvp, lambda a, b: a / b, np.divide,
                coerce=float_coerce, symbol="/", doc="true division; integers are divided as f64 (NumPy)",
                domains={1: "positive"}, quiet=True, scalar="{0} / {1}"))
_POW: list = []


def _numpy_pow(a, b):
    """The meaning of a ** b: NumPy's value (0 ** b is 0, 1 or inf), and PyTorch's derivatives
    where a == 0 as the derivative sympy.diff takes (`fdiff`): d/da = b a^(b-1), 0 where b == 0;
    d/db = a^b log a, 0 where a == 0 and b >= 0 (SymPy's own 0 ** b has neither)."""
    if not _POW:
        sp = _sympy()

        class numpy_pow(sp.Function):  # noqa: N801 - the name printed in the check's code
            numeric = staticmethod(numpy_pow_number)

            @classmethod
            def eval(cls, x, y):
                if y.is_zero:
                    return sp.Integer(1)
                if y == 1:
                    return x
                if x.is_number and y.is_number and (x.is_positive or y.is_integer) and not x.is_zero:
                    return x ** y
                return None

            def fdiff(self, argindex=1):
                x, y = self.args
                if argindex == 1:
                    return sp.Piecewise((0, sp.Eq(y, 0)), (y * numpy_pow(x, y - 1), True))
                return sp.Piecewise((0, sp.Eq(x, 0) & (y >= 0)), (self * sp.log(x), True))

        _POW.append(numpy_pow)
    return _POW[0](a, b)


register(binary("pow", infix("**", PREC_POW, right_assoc=True), _pow_vjp, _pow_jvp, _numpy_pow, np.power,
                coerce=_pow_coerce, symbol="**",
                doc="a ** b; d/da is 0 where b == 0, d/db is 0 where a == 0 and b >= 0, as in PyTorch",
                examples=((("f64[2, 3]", "f64[3]"), {}, {0: "positive"}), (("f64[3]", "f64"), {}, {0: "positive"})),
                special=(Special("base 0", values=((0, 0),)), Special("exponent 0", values=((1, 0),)),
                         Special("0 ** 0", values=((0, 0), (1, 0)))),
                quiet=True, fold_exact=_pow_exact, scalar="pow({0}, {1})", **COSTLY))


TIE = (Special("tie", ties=((0, 1),)),)


# maximum / minimum: ties give half to each side (PyTorch); the losing side is masked.
def _minmax(name, np_fn, win, sympy_cmp, scalar):
    def vjp(ctx, node, ct, needs):
        a, b = node.inputs
        half = B.like_const(0.5, ct)
        out = []
        for i, (x, y) in enumerate(((a, b), (b, a))):
            if not needs[i]:
                out.append(None)
                continue
            wins_or_ties = B.apply("ge" if win == "gt" else "le", x, y)
            tie = B.apply("eq", x, y)
            g = B.ct_map(ct, lambda g: B.where(tie, B.mul(g, half), g))
            out.append(_ub(B.masked(wins_or_ties, g), x))
        return out

    def jvp(ctx, node, ts):
        a, b = node.inputs
        ta = ts[0] if ts[0] is not None else B.zeros_like(a)
        tb = ts[1] if ts[1] is not None else B.zeros_like(b)
        half = B.like_const(0.5, node)
        tie_value = B.mul(B.add(ta, tb), half)
        picked = B.where(B.apply(win, a, b), ta, tb)
        return fit(B.where(B.apply("eq", a, b), tie_value, picked), node)

    def meaning(a, b):
        # the tie as its own branch: its derivative is the convention, 1/2 to each side
        sp = _sympy()
        return sp.Piecewise((a, sympy_cmp(a, b)), (b, sympy_cmp(b, a)), ((a + b) / 2, True))

    return binary(name, xp_call(name), vjp, jvp, meaning, np_fn,
                  doc="ties split the gradient equally between the two sides (PyTorch)",
                  loop=Loop(ufunc=name, row=True), scalar=scalar, special=TIE)


register(_minmax("maximum", np.maximum, "gt", lambda a, b: a > b, "max({0}, {1})"))
register(_minmax("minimum", np.minimum, "lt", lambda a, b: a < b, "min({0}, {1})"))


# ---- comparisons and logic (not differentiable) ------------------------------------------------------
def _cmp_infer(types, attrs):
    return elementwise_type(types, DType.BOOL)


def _cmp(name, symbol, np_fn, sympy_rel):
    return nondifferentiable(name, "elementwise", _cmp_infer, infix(symbol, PREC_CMP),
                             sym_map(lambda a, b: sympy_rel()(a, b)), coerce=lambda args, attrs: B.common_dtype(args),
                             fold=np_fn, elementwise=True, scalar=f"{{0}} {symbol} {{1}}", special=TIE)


register(_cmp("eq", "==", np.equal, lambda: _sympy().Eq))
register(_cmp("ne", "!=", np.not_equal, lambda: _sympy().Ne))
register(_cmp("lt", "<", np.less, lambda: _sympy().Lt))
register(_cmp("le", "<=", np.less_equal, lambda: _sympy().Le))
register(_cmp("gt", ">", np.greater, lambda: _sympy().Gt))
register(_cmp("ge", ">=", np.greater_equal, lambda: _sympy().Ge))


def _logic_infer(types, attrs):
    for i, t in enumerate(types):
        if t.dtype != DType.BOOL:
            raise UserError(f"logical operations need bool operands, got {t}", arg=i)
    return elementwise_type(types, DType.BOOL)


for _name, _np, _sym, _scalar in (
    ("logical_and", np.logical_and, lambda a, b: _sympy().And(a, b), "{0} && {1}"),
    ("logical_or", np.logical_or, lambda a, b: _sympy().Or(a, b), "{0} || {1}"),
):
    register(nondifferentiable(_name, "elementwise", _logic_infer, xp_call(_name), sym_map(_sym), fold=_np,
                               elementwise=True, doc="internal: masks in rules", scalar=_scalar))
register(nondifferentiable("logical_not", "elementwise", _logic_infer, xp_call("logical_not"),
                           sym_map(lambda a: _sympy().Not(a)), fold=np.logical_not, elementwise=True,
                           doc="internal: masks in rules", scalar="!{0}"))


# ---- where and clip ----------------------------------------------------------------------------------
def _where_coerce(args, attrs):
    c, a, b = args
    return [c, *B.common_dtype([a, b])]


def _where_infer(types, attrs):
    if types[0].dtype != DType.BOOL:
        raise UserError(f"`where` needs a bool condition (a comparison), got {types[0]}", arg=0)
    return elementwise_type(types, types[1].dtype).with_(weak=types[1].weak and types[2].weak)


def _where_vjp(ctx, node, ct, needs):
    c, a, b = node.inputs
    out = [None, None, None]
    if needs[1]:
        out[1] = _ub(B.masked(c, ct), a)
    if needs[2]:
        out[2] = _ub(B.masked(B.apply("logical_not", c), ct), b)
    return out


def _where_jvp(ctx, node, ts):
    c, a, b = node.inputs
    ta = ts[1] if ts[1] is not None else B.like_const(0, node)
    tb = ts[2] if ts[2] is not None else B.like_const(0, node)
    return fit(B.where(c, ta, tb), node)


def _where_sympy(c, a, b):
    return _sympy().Piecewise((a, c), (b, True))


register(Primitive(
    "where", "elementwise", _where_infer, xp_call("where"), _where_vjp, _where_jvp, sym_map(_where_sympy),
    coerce=_where_coerce, fold=np.where, elementwise=True, scalar="select({0}, {1}, {2})",
    examples=((("bool[2, 3]", "f64[2, 3]", "f64[3]"), {}, {}),),
    doc="the branch not taken gets exactly zero cotangent, even where its derivative is inf/NaN",
    quiet=True,
))


def _clip_infer(types, attrs):
    no_bool(types, "clip")
    return elementwise_type(types, types[0].dtype)


def _clip_masks(node):
    """Which argument the result comes from. With lo > hi the result is hi everywhere, as
    NumPy's clip and torch.clamp give; the gradient follows the value."""
    x, lo, hi = node.inputs
    inverted = B.apply("gt", lo, hi)
    from_hi = B.apply("logical_or", B.apply("gt", x, hi), inverted)
    from_lo = B.apply("logical_and", B.apply("lt", x, lo), B.apply("logical_not", inverted))
    from_x = B.apply("logical_and", B.apply("ge", x, lo), B.apply("le", x, hi))  # bounds pass (torch.clamp)
    return from_x, from_lo, from_hi


def _clip_vjp(ctx, node, ct, needs):
    masks = _clip_masks(node)
    return [B.unbroadcast(B.masked(m, ct), i.type) if need else None
            for m, i, need in zip(masks, node.inputs, needs)]


def _clip_jvp(ctx, node, ts):
    zero = B.like_const(0, node)
    out = None
    for m, t in zip(_clip_masks(node), ts):
        if t is not None:
            part = B.where(m, t, zero)
            out = part if out is None else B.add(out, part)
    return fit(out, node)


def _clip_sympy(x, lo, hi):
    # NumPy's value (hi wherever lo > hi); the bounds belong to the x branch, so its derivative
    # passes there (torch.clamp)
    sp = _sympy()
    return sp.Piecewise((hi, lo > hi), (hi, x > hi), (lo, x < lo), (x, True))


register(Primitive(
    "clip", "elementwise", _clip_infer, xp_call("clip"), _clip_vjp, _clip_jvp, sym_map(_clip_sympy),
    coerce=lambda args, attrs: B.common_dtype(args), fold=np.clip, elementwise=True,
    scalar="min(max({0}, {1}), {2})", examples=((("f64[6]", "f64", "f64"), {}, {}),),
    special=(Special("x at lo", ties=((0, 1),)), Special("x at hi", ties=((0, 2),)),
             Special("lo == hi", ties=((1, 2),))),
    doc="gradient passes at the bounds (torch.clamp); outside, exactly zero",
))
