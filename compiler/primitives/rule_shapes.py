"""The named shapes of derivative rules: each builds a record's VJP and JVP from a short spec.

    unary(name, emit, deriv, ...)      d/dx f(x) = deriv(x, y): vjp ct * f', jvp t * f', both kept
                                       under any mask (algebra.ct_map); or `masked_deriv` for relu
    binary(name, emit, vjp, jvp, ...)  a broadcasting elementwise op with its own rules (div, pow),
                                       or rules from_partials(node -> (d/da, d/db)) (hypot, xlogy)
    linear(name, ..., transpose)       vjp is the transpose; jvp is the op applied to the tangent
                                       (the other operands unchanged), unless `tangent` is given
    bilinear(name, ..., product, vjp)  jvp is the sum over operands of the op with that operand
                                       replaced by its tangent: one rule for mul, matmul, einsum
    nondifferentiable(name, ...)       no derivative flows (comparisons, logic, one-hot rows)
    constructor(name, ...)             no inputs, nothing to differentiate (zeros, eye)
    leaf(name, ...)                    param, const, dim: made by core/nodes.py, never by apply

Each returns the frozen record (not yet registered). Rule signatures: vjp(ctx, node, ct,
needs) -> one cotangent per input (None: zero, or not needed); jvp(ctx, node, tangents)
-> the output's tangent (None: zero). `ctx` is core.primitive.RuleContext.
"""
from __future__ import annotations

import functools

from ..core.diagnostics import UserError
from ..core.primitive import Primitive
from ..core.types import DType
from . import algebra as B
from .common import elementwise_type, need_float, no_bool, sym_map


def fit(t, node):
    """A tangent broadcast to the node's shape (an operand may have been smaller)."""
    return None if t is None else B.broadcast_to(t, node.shape)


# ---- unary elementwise ---------------------------------------------------------------------------
def _float_unary_coerce(args, attrs):
    return [B.to_float(args[0])]


def _derivative(ctx, node, deriv):
    """deriv(x, y) at node, made once per rule context (the nodes it makes are the same every
    time: interned in the one graph the sweeps build)."""
    memo = ctx.primal_values
    if node.id not in memo:
        memo[node.id] = deriv(node.inputs[0], node)
    return memo[node.id]


def unary(name, emit, deriv, sympy_fn, fold, *, float_only=True, masked_deriv=None, doc="", domain="normal",
          scalar=None, **facets) -> Primitive:
    """A unary elementwise primitive from its derivative `deriv(x, y)` (y the output; None: the
    derivative is 0). `masked_deriv(x, y)` instead gives the bool mask where the derivative is
    1 (relu): the VJP is then where(mask, ct, 0) and carries the mask onwards."""

    def infer(types, attrs):
        if float_only:
            need_float(types[0], f"`{name}`")
        elif name == "neg" and types[0].dtype == DType.BOOL:
            raise UserError("unary `-` is not defined on bool values; convert first, e.g. with i64(...) or f32(...)")
        else:
            no_bool(types, name)
        return types[0]

    def vjp(ctx, node, ct, needs):
        x = node.inputs[0]
        if masked_deriv is not None:
            return [B.masked(masked_deriv(x, node), ct)]
        d = _derivative(ctx, node, deriv)
        if d is None:
            return [None]
        return [B.ct_map(ct, lambda g: B.mul(g, d))]

    def jvp(ctx, node, ts):
        (t,) = ts
        x = node.inputs[0]
        if masked_deriv is not None:
            return B.masked(masked_deriv(x, node), t)
        d = _derivative(ctx, node, deriv)
        # a masked tangent stays masked: where(c, g * f'(x), 0), never 0 * inf
        return None if d is None else B.ct_map(t, lambda g: B.mul(g, d))

    return Primitive(
        name, "elementwise", infer, emit, vjp, jvp, sym_map(sympy_fn),
        coerce=_float_unary_coerce if float_only else None, fold=fold, rule_shape="unary", elementwise=True,
        doc=doc, scalar=scalar, examples=((("f64[2, 3]",), {}, {0: domain}),), **facets,
    )


# ---- binary elementwise --------------------------------------------------------------------------
def common_coerce(args, attrs):
    """Operands promoted to one dtype (NumPy 2 rules, literals weak)."""
    return B.common_dtype(args)


def float_coerce(args, attrs):
    """Operands made floating, then promoted to one dtype (integers compute as f64, NumPy's
    true division)."""
    return B.common_dtype([B.to_float(a) for a in args])


def arith_infer(symbol):
    """Broadcast the operands; bool operands are refused, naming the operator."""

    def infer(types, attrs):
        no_bool(types, symbol)
        return elementwise_type(types)

    return infer


def binary_examples(domains=None) -> tuple:
    return ((("f64[2, 3]", "f64[3]"), {}, domains or {}), (("f64[2, 1]", "f64[2, 3]"), {}, domains or {}))


def binary(name, emit, vjp, jvp, sympy_fn, fold, coerce=common_coerce, symbol=None, doc="", domains=None,
           rule_shape="binary", examples=None, **facets) -> Primitive:
    """A broadcasting binary elementwise primitive (NumPy promotion; bool refused)."""
    return Primitive(
        name, "elementwise", arith_infer(symbol or name), emit, vjp, jvp, sym_map(sympy_fn),
        coerce=coerce, fold=fold, rule_shape=rule_shape, elementwise=True, doc=doc,
        examples=examples or binary_examples(domains), **facets,
    )


def from_partials(partials):
    """(vjp, jvp) of a broadcasting binary op from its partial derivatives: partials(node) ->
    (d/da, d/db), None for 0. Each cotangent is ct * d (kept under any mask) summed back to its
    operand's shape; the tangent is the sum of t * d."""

    def vjp(ctx, node, ct, needs):
        out = []
        for i, d in enumerate(partials(node)):
            if not needs[i] or d is None:
                out.append(None)
                continue
            out.append(B.unbroadcast(B.ct_map(ct, lambda g, d=d: B.mul(g, d)), node.inputs[i].type))
        return out

    def jvp(ctx, node, ts):
        parts = [B.ct_map(t, lambda g, d=d: B.mul(g, d)) for t, d in zip(ts, partials(node))
                 if t is not None and d is not None]
        return fit(functools.reduce(B.add_ct, parts), node) if parts else None

    return vjp, jvp


# ---- linear and bilinear -------------------------------------------------------------------------
def _op_of_tangent(ctx, node, ts):
    """A linear op applied to the tangent of its first operand (the others are integer data)."""
    if ts[0] is None:
        return None
    return B.apply(node.op, ts[0], *node.inputs[1:], **node.attr_dict)


def linear(name, kind, infer, emit, transpose, sympy, *, tangent=None, **facets) -> Primitive:
    """An op linear in its (first) operand: the VJP is its transpose, the JVP the op itself."""
    return Primitive(name, kind, infer, emit, transpose, tangent or _op_of_tangent, sympy, rule_shape="linear",
                     **facets)


def bilinear(name, kind, infer, emit, product, vjp, sympy, **facets) -> Primitive:
    """An op linear in each operand separately (mul, matmul, einsum): the JVP is the sum over the
    operands of product(node, i, t_i), the op with operand i replaced by its tangent."""

    def jvp(ctx, node, ts):
        parts = [product(node, i, t) for i, t in enumerate(ts) if t is not None]
        return fit(functools.reduce(B.add_ct, parts), node)

    return Primitive(name, kind, infer, emit, vjp, jvp, sympy, rule_shape="bilinear", **facets)


# ---- no derivative -----------------------------------------------------------------------------
def nondifferentiable(name, kind, infer, emit, sympy, **facets) -> Primitive:
    """Its result carries no derivative (a bool or an integer): no rule, and none is missing."""
    return Primitive(name, kind, infer, emit, None, None, sympy, rule_shape="nondifferentiable",
                     differentiable=False, **facets)


def _no_inputs(ctx, node, ct, needs):
    return []


def _no_tangent(ctx, node, ts):
    return None


def constructor(name, infer, emit, sympy, **facets) -> Primitive:
    """An array made from attributes alone (zeros, eye): nothing flows in or out."""
    return Primitive(name, "constructor", infer, emit, _no_inputs, _no_tangent, sympy, rule_shape="constructor",
                     allocates=True, writes_shape=True, **facets)


def _leaf_infer(types, attrs):  # pragma: no cover - leaves are made by core/nodes.py
    raise AssertionError("leaf nodes are not made by apply()")


def leaf(name, kind, emit, sympy, doc="") -> Primitive:
    return Primitive(name, kind, _leaf_infer, emit, _no_inputs, _no_tangent, sympy, rule_shape="leaf", doc=doc)
