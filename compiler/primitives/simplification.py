"""The algebraic rules -O1 simplifies with (passes/simplify.py runs them), each named.

Each rule looks at one node (whose inputs are already simplified) and returns an equal,
cheaper node or None. A rewrite is kept only if it leaves the node's type (dtype and shape)
unchanged (the pass's `accept`). Rules never fold `x * 0` or `x - x` (NaN and inf make them
wrong) and never drop a `where`.

A rule that gathers constants never makes a finite result inf or NaN: a constant it folds is
in range (folding.in_range: `5 * 1e308 * 1e-308` keeps its three factors), and a constant
moved past a product or a sum of run-time values only where that cannot take an
intermediate out of range (`sum(c u) = c sum(u)` for |c| >= 1 only: sum(u) is then no
larger than sum(c u)). tests/test_extreme_constants.py compares every level with -O0 on
programs full of 1e308 and 1e-308.
"""
from __future__ import annotations

import math

from ..core.ir import Node
from ..core.rewrite import Op, RuleSet, Wild, X, Y
from ..core.types import broadcast_shapes, dim_prod
from . import algebra as B
from .folding import in_range
from .linalg import full_spec, parse_spec
from .nn import sub_label

SIMPLIFY = RuleSet("simplify")


def _const(n: Node):
    return n.attr("value") if n.op.name == "const" else None  # (asked of nearly every node: no property)


def _folded(c: Node, parts, like: Node, product: bool) -> Node | None:
    """c, the constant folded from the constants `parts`, when it is in range in like's dtype."""
    ok = c.is_const and in_range(c.attr("value"), like.dtype, [p.attr("value") for p in parts], product)
    return c if ok else None


def _at_least_one(c: Node) -> bool:
    """Moving c out of a product or sum of run-time values (c (a b) for (c a) b) leaves the inner
    value no larger than before, so it cannot overflow where the program did not."""
    v = _const(c)
    return v is not None and (not c.dtype.is_float or abs(v) >= 1 and math.isfinite(v))


def same_type(new: Node, old: Node) -> bool:
    """A rewrite keeps the node's dtype and shape."""
    return new.shape == old.shape and new.dtype == old.dtype



# ---- identities ------------------------------------------------------------------------------
def _without_unit(n: Node, unit, either_side: bool):
    """n's other operand where one is the op's unit (and leaves the type unchanged)."""
    a, b = n.inputs
    if _const(b) == unit and same_type(a, n):
        return a
    if either_side and _const(a) == unit and same_type(b, n):
        return b
    return None


@SIMPLIFY.rule("x * 1 = x and 1 * x = x", Op("mul", with_input="const"))
def times_one(m):
    return _without_unit(m.node, 1, True)


@SIMPLIFY.rule("x + 0 = x and 0 + x = x", Op("add", with_input="const"))
def plus_zero(m):
    return _without_unit(m.node, 0, True)


@SIMPLIFY.rule("x - 0 = x", Op("sub", with_input="const"))
def minus_zero(m):
    return _without_unit(m.node, 0, False)


@SIMPLIFY.rule("x / 1 = x", Op("div", with_input="const"))
def over_one(m):
    return _without_unit(m.node, 1, False)


@SIMPLIFY.rule("x ** 1 = x", Op("pow", with_input="const"))
def to_the_one(m):
    return _without_unit(m.node, 1, False)


@SIMPLIFY.rule("--x = x", Op("neg", Op("neg", X)))
def double_negation(m):
    return m.x


@SIMPLIFY.rule("(-a) * (-b) = a * b and (-a) / (-b) = a / b", Op(("mul", "div"), Op("neg", X), Op("neg", Y)))
def negations_cancel(m):
    return B.apply(m.node.op, m.x, m.y)


@SIMPLIFY.rule("a + (-b) = a - b", Op("add", X, Op("neg", Y)))
def plus_negation(m):
    return B.apply("sub", m.x, m.y)


@SIMPLIFY.rule("(-a) + b = b - a", Op("add", Op("neg", X), Y))
def negation_plus(m):
    return B.apply("sub", m.y, m.x)


@SIMPLIFY.rule("a - (-b) = a + b", Op("sub", X, Op("neg", Y)))
def minus_negation(m):
    return B.apply("add", m.x, m.y)


@SIMPLIFY.rule("(-1) * x = -x and x * (-1) = -x", Op("mul", with_input="const"))
def times_minus_one(m):
    a, b = m.node.inputs
    if _const(a) == -1:
        return B.apply("neg", b)
    if _const(b) == -1:
        return B.apply("neg", a)
    return None


@SIMPLIFY.rule("a * (1 / b) = a / b and (1 / b) * a = a / b, for floats and b of the result's shape "
               "(one rounding, one pass; a reciprocal of a scalar stays: computed once, then multiplies)",
               Op("mul", with_input="div"))
def times_reciprocal(m):
    n = m.node
    if n.op.name != "mul" or not n.dtype.is_float:
        return None
    a, b = n.inputs
    for r, other in ((b, a), (a, b)):
        if r.op.name == "div" and _const(r.inputs[0]) == 1 and r.inputs[1].shape == n.shape:
            return B.apply("div", other, r.inputs[1])
    return None


# ---- constants ---------------------------------------------------------------------------------
@SIMPLIFY.rule("op(full(c), x) = op(c, x) when x alone has the result's shape (no constant array is made)",
               Op(None, with_input="full"))
def full_operands(m):
    n = m.node
    if not n.op.elementwise or len(n.inputs) < 2:
        return None
    fulls = [k for k, i in enumerate(n.inputs) if i.op.name == "full"]
    if not fulls:
        return None
    args = list(n.inputs)
    for k in fulls:
        args[k] = B.const(n.inputs[k].attr("value"), n.inputs[k].type.with_(shape=()))
    if broadcast_shapes(*[a.shape for a in args]) != n.shape:
        return None
    return B.apply(n.op, *args, **n.attr_dict)


@SIMPLIFY.rule("c1 * (c2 * x) = (c1 c2) * x, and likewise for + (constants gathered on the left)",
               Op(("mul", "add"), with_input="const"))
def constant_chains(m):
    n = m.node
    if n.op.name not in ("mul", "add"):
        return None
    a, b = n.inputs
    if _const(b) is not None and _const(a) is None:  # constants first: c * x
        a, b = b, a
    if _const(a) is None:
        return None
    if b.op == n.op:
        inner_c = next((i for i in b.inputs if _const(i) is not None), None)
        if inner_c is not None:
            other = b.inputs[1] if inner_c is b.inputs[0] else b.inputs[0]
            c = _folded(B.apply(n.op, a, inner_c), (a, inner_c), n, n.op.name == "mul")  # folds: both constants
            return None if c is None else B.apply(n.op, c, other)
    if b.op.name == "neg" and n.op.name == "mul":  # c * -x = (-c) * x
        return B.apply("mul", B.apply("neg", a), b.inputs[0])
    if (a, b) != tuple(n.inputs):
        return B.apply(n.op, a, b)
    return None


@SIMPLIFY.rule("(c1 * a) * (c2 * b) = (c1 c2) * (a * b): constants gathered out of products",
               Op("mul", with_input="mul"))
def constants_out_of_products(m):
    n = m.node
    if n.op.name != "mul" or any(_const(i) is not None for i in n.inputs):
        return None
    parts, consts = [], []
    for i in n.inputs:
        if i.op.name == "mul" and _const(i.inputs[0]) is not None and _const(i.inputs[1]) is None:
            consts.append(i.inputs[0])
            parts.append(i.inputs[1])
        else:
            parts.append(i)
    if not consts:
        return None
    c = consts[0] if len(consts) == 1 else _folded(B.apply("mul", *consts), consts, n, True)
    if c is None or not _at_least_one(c):  # |c| < 1: a * b may overflow where (c1 a) * (c2 b) did not
        return None
    return B.apply("mul", c, B.apply("mul", *parts))


@SIMPLIFY.rule("x / c = x * (1 / c) for floating constants (a multiply is cheaper than a divide)",
               Op("div", with_input="const"))
def divide_by_constant(m):
    n = m.node
    if n.op.name == "div" and _const(n.inputs[1]) not in (None, 0) and n.dtype.is_float:
        c = n.inputs[1]
        one = B.like_const(1, c)
        inverse = _folded(B.apply("div", one, c), (one, c), n, True)  # 1 / 1e-310 is inf
        return None if inverse is None else B.apply("mul", inverse, n.inputs[0])
    return None


@SIMPLIFY.rule("op(broadcast_to(a), x) = op(a, x) when the operands broadcast to the result's shape without "
               "it (NumPy broadcasts a itself: no stride-0 array in the kernel)", Op(None, with_input="broadcast_to"))
def broadcast_operands(m):
    n = m.node
    if not n.op.elementwise or len(n.inputs) < 2 or n.op.name == "broadcast_to":
        return None
    args = [i.inputs[0] if i.op.name == "broadcast_to" else i for i in n.inputs]
    if args == list(n.inputs) or broadcast_shapes(*[a.shape for a in args]) != n.shape:
        return None
    return B.apply(n.op, *args, **n.attr_dict)


@SIMPLIFY.rule("op(broadcast_to(a), c) = broadcast_to(op(a, c)) when every other operand is a scalar "
               "(elementwise ops commute with broadcasting: a's few values, not the whole array)",
               Op(None, with_input="broadcast_to"))
def before_broadcast(m):
    n = m.node
    if not n.op.elementwise or n.op.name == "broadcast_to":
        return None
    if not all(i.op.name == "broadcast_to" or i.shape == () for i in n.inputs):
        return None
    args = [i.inputs[0] if i.op.name == "broadcast_to" else i for i in n.inputs]
    if dim_prod(broadcast_shapes(*[a.shape for a in args])) == dim_prod(n.shape):
        return None  # nothing smaller to compute on
    return B.broadcast_to(B.apply(n.op, *args, **n.attr_dict), n.shape)


# ---- powers ------------------------------------------------------------------------------------
def _power(m, e):
    """(x, the exponent) when n is x ** e for the constant e, x of the result's shape."""
    n = m.node
    x = n.inputs[0]
    return x if _const(n.inputs[1]) == e and x.shape == n.shape else None


@SIMPLIFY.rule("x ** 2 = x * x", Op("pow", with_input="const"))
def squared(m):
    x = _power(m, 2)
    return None if x is None else B.apply("mul", x, x)


@SIMPLIFY.rule("x ** 3 = (x * x) * x", Op("pow", with_input="const"))
def cubed(m):
    x = _power(m, 3)
    return None if x is None else B.apply("mul", B.apply("mul", x, x), x)


@SIMPLIFY.rule("x ** 4 = (x * x) * (x * x)", Op("pow", with_input="const"))
def fourth_power(m):
    x = _power(m, 4)
    if x is None:
        return None
    sq = B.apply("mul", x, x)
    return B.apply("mul", sq, sq)


@SIMPLIFY.rule("x ** 0.5 = sqrt(x), for floats", Op("pow", with_input="const"))
def square_root(m):
    x = _power(m, 0.5)
    return B.apply("sqrt", x) if x is not None and x.dtype.is_float else None


@SIMPLIFY.rule("x ** -1 = 1 / x, for floats", Op("pow", with_input="const"))
def reciprocal(m):
    x = _power(m, -1)
    return B.apply("div", B.like_const(1, x), x) if x is not None and x.dtype.is_float else None


@SIMPLIFY.rule("polynomials in Horner form: 5x^3 + 2x^2 + 4x + 8 = ((5x + 2)x + 4)x + 8 (when it takes fewer ops)",
               Op(("add", "sub")))
def horner(m):
    """Fewer operations and live temporaries; the rounding error bound is the expanded sum's.
    Where terms of opposite signs overflow (x = -inf or -1e300 above: -inf + inf), the nested
    form gives the polynomial's limit, -inf, and the form as written NaN."""
    n = m.node
    if n.op.name not in ("add", "sub") or not n.dtype.is_float:
        return None
    if any(i.id in _NOT_POLYNOMIAL for i in n.inputs):
        _NOT_POLYNOMIAL.add(n.id)  # a sum with an operand that is not a polynomial is not one either
        return None
    if not _three_operations(n):
        return None  # Horner's form of a polynomial written in two operations is no shorter
    found = _polynomial(n)
    if found is None:
        return None
    x, coefs = found
    if x.shape != n.shape or x.dtype != n.dtype or max(coefs) < 2:
        return None
    top = max(coefs)
    if top - (coefs[top] == 1) + len(coefs) - 1 >= _op_count(n, x):  # a multiply per degree, an add per term
        return None  # (asked first: it is cheaper than the range checks, and usually says no)
    if not all(2.0 ** -_COEF_RANGE <= abs(c) <= 2.0 ** _COEF_RANGE and in_range(c, n.dtype) for c in coefs.values()):
        return None  # ((1e308 x + 1e308) x overflows at x = 0.9, where 1e308 x^2 + 1e308 x does not)
    acc = None  # the leading coefficient, not yet multiplied by x
    for k in range(top - 1, -1, -1):
        acc = (x if coefs[top] == 1 else B.apply("mul", B.like_const(coefs[top], x), x)) if acc is None \
            else B.apply("mul", acc, x)
        if k in coefs:
            acc = B.apply("sub" if coefs[k] < 0 else "add", acc, B.like_const(abs(coefs[k]), x))
    return acc


def _polynomial(n: Node):
    """(x, {degree: coefficient}) when n is a polynomial in one value x, written with scalar
    constants and +, -, unary - and *; else None. A product of two sums is not expanded: the
    user's factored form, (2x - 1)(3x - 2), is more accurate near its roots than the expansion.
    A coefficient of x that cancels to 0 keeps the code as written: x - x is NaN at x = inf."""
    leaf: list[Node] = []
    memo: dict[int, dict | None] = {}

    def walk(m: Node):
        if m.id in _NOT_POLYNOMIAL:
            return None  # not one in any value, so not in this one: the sum above is none either
        if m.id not in memo:
            if len(memo) >= _POLYNOMIAL_NODES:
                raise _TooBig
            memo[m.id] = None
            memo[m.id] = terms(m)
        return memo[m.id]

    def terms(m: Node):
        if m.op.name == "const":
            v = m.attr("value")
            return {0: v} if m.shape == () and v != 0 and math.isfinite(v) else None
        if m.op.name == "pow" and m is not (leaf[0] if leaf else None):
            # x ** k for a whole k (small_powers leaves k >= 5): a monomial, so a sum with such a
            # term is one polynomial, not a prefix rewritten apart from the terms that share its
            # powers (0.5 + 0.5 x^3 + 0.5 x^4 + x ** 5: x^3 computed twice)
            k = _const(m.inputs[1])
            if (k is None or not math.isfinite(k) or k != int(k) or not 2 <= k <= _MAX_DEGREE
                    or walk(m.inputs[0]) != {1: 1}):
                return None
            return {int(k): 1}
        if m.op.name in ("add", "sub", "mul", "neg") and m is not (leaf[0] if leaf else None):
            parts = [walk(i) for i in m.inputs]
            if any(p is None for p in parts):
                return None
            if m.op.name == "neg":
                return {k: -c for k, c in parts[0].items()}
            a, b = parts
            if m.op.name == "mul":
                if len(a) > 1 and len(b) > 1:
                    return None
                out: dict = {}
                for i, ca in a.items():
                    for j, cb in b.items():
                        out[i + j] = out.get(i + j, 0) + ca * cb
            else:
                sign = -1 if m.op.name == "sub" else 1
                out = dict(a)
                for k, c in b.items():
                    out[k] = out.get(k, 0) + sign * c
            if any((c == 0 and k) or not math.isfinite(c) for k, c in out.items()):
                return None
            return {k: c for k, c in out.items() if c}
        if not leaf:
            leaf.append(m)
        return {1: 1} if m is leaf[0] else None

    try:
        found = walk(n)
    except _TooBig:
        found = None
    finally:
        walk = terms = None  # noqa: F841  (they call each other through cells: a reference cycle per call)
    if found is None:
        # remembered: each sum of a long chain would otherwise walk _POLYNOMIAL_NODES nodes
        # below it again (a node that is not a polynomial in any one value makes no sum above
        # it one; a node made of constants alone, found but without a leaf, may)
        if len(_NOT_POLYNOMIAL) > 1_000_000:
            _NOT_POLYNOMIAL.clear()
        _NOT_POLYNOMIAL.add(n.id)
        return None
    return (leaf[0], found) if leaf else None


_NOT_POLYNOMIAL: set[int] = set()  # ids of nodes _polynomial found not to be one (ids are never reused)


_MAX_DEGREE = 32  # x ** k with a larger k stays a power: a Horner chain that long is no cheaper
# Coefficients between 2^-24 and 2^24 (1/5040 of a Taylor series included): the nested form's
# intermediates then stay within a factor 2^53 of the terms the written form computes, so it
# overflows only where those terms come that close to the largest float.
_COEF_RANGE = 24

# The rule runs at every + and - of a sum: looking at most this many nodes down keeps a
# 500-term sum linear in time and shallow in recursion.
_POLYNOMIAL_NODES = 48


class _TooBig(Exception):
    pass


def _three_operations(n: Node) -> bool:
    """Are there three +, -, * or ** nodes below n (n included), through such nodes alone? Where
    n is a polynomial in x, those are the nodes _op_count counts, and a sum of degree >= 2
    written with two of them is no longer than its Horner form: the rule would leave it."""
    seen: set[int] = set()
    stack = [n]
    while stack:
        m = stack.pop()
        if m.id in seen or m.op.name not in _ARITHMETIC:
            continue
        seen.add(m.id)
        if len(seen) >= 3:
            return True
        stack.extend(m.inputs)
    return False


_ARITHMETIC = frozenset({"add", "sub", "mul", "neg", "pow"})


def _op_count(n: Node, x: Node) -> int:
    """Arithmetic nodes between n and the leaves (x and constants), each counted once."""
    seen: set[int] = set()
    stack = [n]
    while stack:
        m = stack.pop()
        if m is x or m.op.name == "const" or m.id in seen:
            continue
        seen.add(m.id)
        stack.extend(m.inputs)
    return len(seen)


# ---- functions and their inverses -----------------------------------------------------------------
@SIMPLIFY.rule("log(exp(x)) = x", Op("log", Op("exp", X)))
def log_exp(m):
    return m.x


@SIMPLIFY.rule("where(c, x, x) = x", Op("where", Wild(), X, X))
def where_same(m):
    return m.x


# ---- cross_entropy's gradient ------------------------------------------------------------------------
def _shifted_exp_sum(e: Node, s: Node, axis: int) -> bool:
    """s = sum(e) along axis (kept), e = exp(z - finite_or_zero(max(z))) along it: the softmax
    form (primitives/forms.py). Its max term is exp(0) = 1, so s >= 1 (or the row is all -inf
    (s = 0), holds +inf or NaN (s = inf or NaN))."""
    if s.op.name != "sum" or s.inputs[0] is not e or s.attr("axes") != (axis,) or not s.attr("keepdims"):
        return False
    if e.op.name != "exp" or e.inputs[0].op.name != "sub":
        return False
    z, shift = e.inputs[0].inputs
    if shift.op.name != "finite_or_zero" or shift.inputs[0].op.name != "max":
        return False
    m = shift.inputs[0]
    return m.inputs[0] is z and m.attr("axes") == (axis,) and m.attr("keepdims")


@SIMPLIFY.rule("a (exp(d) / s - onehot(k)) = exp(d) (a / s) - a onehot(k), for the softmax form and a "
               "constant along the class axis (a mean's 1/N): one pass over the [..., C] values, not two",
               Op("mul", with_input="sub_label"))
def scaled_softmax_minus_onehot(m):
    """W14 (256 x 32000 float32): the scale joins the row's 1/s (N values), and the scatter
    subtracts a, not 1: single-threaded, interleaved best times 1.05x hand NumPy before, 0.95-0.96x
    after (a multiply pass where the hand version divides by N s). a / s cannot overflow where a (e / s) did
    not, as s >= 1 in this form (the degenerate rows give NaN both ways); the rounding is that of
    a (e / s), two roundings, and at the label a e / s - a against a (e / s - 1)."""
    n = m.node
    a, g = n.inputs
    if g.op.name != "sub_label":
        a, g = g, a
    if g.op.name != "sub_label" or len(g.inputs) != 2 or not n.dtype.is_float or g.shape != n.shape:
        return None
    p, labels = g.inputs
    axis = p.type.rank - 1
    if a.dtype != n.dtype or a.shape not in ((), p.shape[:-1] + (1,)) or p.op.name != "div":
        return None
    e, s = p.inputs
    if e.shape != p.shape or s.shape != p.shape[:-1] + (1,) or not _shifted_exp_sum(e, s, axis):
        return None
    return sub_label(B.apply("mul", e, B.apply("div", a, s)), labels, a)


# ---- shapes -------------------------------------------------------------------------------------------
@SIMPLIFY.rule("transpose(transpose(x)) = one transpose; identity permutations vanish", Op("transpose"))
def transposes(m):
    n = m.node
    if n.op.name != "transpose":
        return None
    perm = n.attr("perm")
    x = n.inputs[0]
    if x.op.name == "transpose":
        inner = x.attr("perm")
        perm = tuple(inner[p] for p in perm)
        x = x.inputs[0]
    if perm == tuple(range(len(perm))):
        return x
    if x is not n.inputs[0]:
        return B.apply("transpose", x, perm=perm)
    return None


def _swaps_last_two(perm) -> bool:
    r = len(perm)
    return r >= 2 and tuple(perm) == tuple(range(r - 2)) + (r - 1, r - 2)


def _transposed(x: Node, perm) -> Node:
    """x with its last two axes swapped: the transpose x is made from when x is one (they cancel)."""
    if x.op.name == "transpose" and tuple(x.attr("perm")) == tuple(perm):
        return x.inputs[0]
    return B.apply("transpose", x, perm=perm)


@SIMPLIFY.rule("(a @ b)^T = b^T @ a^T over the last two axes, when a transpose cancels: the product comes out in "
               "C order (no strided view to return or read), from the operands it was made of",
               Op("transpose", Op("matmul")))
def transposed_product(m):
    n = m.node
    if n.op.name != "transpose" or n.inputs[0].op.name != "matmul":
        return None
    perm = n.attr("perm")
    a, b = n.inputs[0].inputs
    if not _swaps_last_two(perm) or a.type.rank != len(perm) or b.type.rank != len(perm):
        return None  # (a vector operand or a broadcast batch: left as written)
    if not any(x.op.name == "transpose" and tuple(x.attr("perm")) == tuple(perm) for x in (a, b)):
        return None  # nothing cancels: one transpose for another
    return B.apply("matmul", _transposed(b, perm), _transposed(a, perm))


@SIMPLIFY.rule("reshape(reshape(x)) = reshape(x); a reshape to the same shape vanishes", Op("reshape"))
def reshapes(m):
    n = m.node
    if n.op.name != "reshape":
        return None
    x = n.inputs[0]
    if x.op.name == "reshape":
        x = x.inputs[0]
    if x.shape == n.shape:
        return x
    if x is not n.inputs[0]:
        return B.apply("reshape", x, shape=n.shape)
    return None


@SIMPLIFY.rule("sum(broadcast_to(s)) over everything = s * (element count), for a scalar s",
               Op("sum", Op("broadcast_to")))
def sum_of_broadcast(m):
    n = m.node
    if n.op.name != "sum" or n.inputs[0].op.name != "broadcast_to":
        return None
    inner = n.inputs[0].inputs[0]
    if inner.shape != () or len(n.attr("axes")) != n.inputs[0].type.rank or n.attr("keepdims"):
        return None
    count = dim_prod(n.inputs[0].shape)
    return B.apply("mul", inner, B.dim_value(count))


@SIMPLIFY.rule("sum(u + c) = sum(u) + c n and sum(c u) = c sum(u), for a scalar constant c (one pass less)",
               Op("sum", Op(("add", "mul"))))
def constants_out_of_sums(m):
    n = m.node
    if n.op.name != "sum" or n.inputs[0].op.name not in ("add", "mul"):
        return None
    inner = n.inputs[0]
    c = next((i for i in inner.inputs if i.op.name == "const"), None)
    if c is None:
        return None
    u = inner.inputs[1] if c is inner.inputs[0] else inner.inputs[0]
    if u.shape != inner.shape or u.dtype != inner.dtype:
        return None
    # sum(u) must not overflow where sum(u + c) or sum(c u) did not: |c| >= 1 for a product; for
    # a sum, |c| <= 1 and at least single precision, so c n and the shift are far from overflow
    if inner.op.name == "mul" and not _at_least_one(c):
        return None
    if inner.op.name == "add" and n.dtype.is_float and (abs(_const(c)) > 1 or n.dtype.itemsize < 4):
        return None
    total = B.apply("sum", u, axes=n.attr("axes"), keepdims=n.attr("keepdims"))
    if inner.op.name == "mul":
        return B.apply("mul", c, total)
    count = dim_prod(u.shape[a] for a in n.attr("axes"))
    return B.apply("add", total, B.apply("mul", c, B.dim_value(count)))


@SIMPLIFY.rule("einsum of a transpose reads the operand with permuted subscripts", Op("einsum", with_input="transpose"))
def einsum_transpose(m):
    n = m.node
    if n.op.name != "einsum" or not any(i.op.name == "transpose" for i in n.inputs):
        return None
    subs, out, _ = parse_spec(n.attr("spec"), len(n.inputs))
    if any("." in s for s in subs):
        return None
    new_ops, new_subs = [], []
    for s, x in zip(subs, n.inputs):
        if x.op.name == "transpose":
            perm = x.attr("perm")
            inner = [""] * len(perm)
            for k, p in enumerate(perm):
                inner[p] = s[k]
            new_ops.append(x.inputs[0])
            new_subs.append("".join(inner))
        else:
            new_ops.append(x)
            new_subs.append(s)
    return B.apply("einsum", *new_ops, spec=full_spec(new_subs, out))



_SCATTERS = ("index_grad", "index_grads")


def _scatter_parts(x: Node) -> list[tuple[Node, tuple, int]]:
    """(cotangent, index, sign) for each slice an index_grad or index_grads writes."""
    if x.op.name == "index_grad":
        return [(x.inputs[0], x.attr("items"), 1)]
    return list(zip(x.inputs, x.attr("parts"), x.attr("signs")))


def _index_grads(parts, like: Node) -> Node:
    return B.apply("index_grads", *[g for g, _, _ in parts], parts=tuple(p[1] for p in parts),
                   signs=tuple(p[2] for p in parts), shape=like.shape)


@SIMPLIFY.rule("index_grad(a) + index_grad(b) = index_grads(a, b): the cotangents of several slices of one "
               "value added into views of one zeros array", Op("add", Op(_SCATTERS), Op(_SCATTERS)))
def slice_cotangents_in_one_array(m):
    n = m.node
    a, b = n.inputs
    if not (same_type(a, n) and same_type(b, n)):
        return None
    parts = _scatter_parts(a) + _scatter_parts(b)
    if any(g.dtype != n.dtype for g, _, _ in parts):
        return None
    return _index_grads(parts, n)


@SIMPLIFY.rule("index_grads(..., -b, ...) subtracts b at its index (no negated copy)",
               Op("index_grads", with_input="neg"))
def negated_slice_cotangent(m):
    n = m.node
    parts = _scatter_parts(n)
    if not any(g.op.name == "neg" and same_type(g.inputs[0], g) for g, _, _ in parts):
        return None
    parts = [(g.inputs[0], items, -sign) if g.op.name == "neg" and same_type(g.inputs[0], g) else (g, items, sign)
             for g, items, sign in parts]
    return _index_grads(parts, n)


def _onto(base: Node, parts, like: Node) -> Node:
    return B.apply("index_grads_onto", base, *[g for g, _, _ in parts], parts=tuple(p[1] for p in parts),
                   signs=tuple(p[2] for p in parts))


def _onto_parts(x: Node) -> list[tuple[Node, tuple, int]]:
    return list(zip(x.inputs[1:], x.attr("parts"), x.attr("signs")))


@SIMPLIFY.rule("a + index_grads(b) = index_grads_onto(a, b): slice cotangents added into views of a full-size "
               "value (over it, where it is a temporary), not into zeros then added",
               Op("add", where=lambda n: any(i.op.name in _SCATTERS + ("index_grads_onto",) for i in n.inputs)))
def slice_cotangents_onto_a_value(m):
    n = m.node
    a, b = n.inputs
    if b.op.name not in _SCATTERS + ("index_grads_onto",):
        a, b = b, a  # (the scatter second)
    if a.op.name in _SCATTERS and b.op.name in _SCATTERS:
        return None  # both slices: index_grads (slice_cotangents_in_one_array)
    if not (same_type(a, n) and same_type(b, n)) or a.dtype != n.dtype:
        return None
    if b.op.name == "index_grads_onto":
        if a.op.name != "index_grads_onto" and a.op.name not in _SCATTERS:
            return None  # value + (value + slices): left as it is
        a, b = b, a  # onto(v, P) + scatter: v gets the scatter's parts too
        return _onto(a.inputs[0], _onto_parts(a) + _scatter_parts(b), n) if b.op.name in _SCATTERS else None
    parts = _scatter_parts(b)
    if any(g.dtype != n.dtype for g, _, _ in parts):
        return None
    if a.op.name == "index_grads_onto":
        return _onto(a.inputs[0], _onto_parts(a) + parts, n)
    return _onto(a, parts, n)


@SIMPLIFY.rule("index_grads_onto(a, ..., -b, ...) subtracts b at its index (no negated copy)",
               Op("index_grads_onto", with_input="neg"))
def negated_slice_cotangent_onto(m):
    n = m.node
    parts = _onto_parts(n)
    if not any(g.op.name == "neg" and same_type(g.inputs[0], g) for g, _, _ in parts):
        return None
    parts = [(g.inputs[0], items, -sign) if g.op.name == "neg" and same_type(g.inputs[0], g) else (g, items, sign)
             for g, items, sign in parts]
    return _onto(n.inputs[0], parts, n)


# ---- negations (passes/negations.py: needs to know which values are shared) ---------------------
def negated_free(n: Node, like: Node, single_use) -> Node | None:
    """-n without a pass over an array of like's size, or None: n is a constant, a negation, a
    scalar (negated once, not per element), or a product or quotient, used only here, with
    such a factor. Negation is exact, so -(a b) = (-a) b to the bit. A shared product is not
    made again: its other readers would keep it and the negated copy be one pass more."""
    v = _const(n)
    if v is not None and n.dtype.is_float:
        return B.const(-v, n.type)
    if n.op.name == "neg":
        return n.inputs[0]
    if n.shape == () and like.shape != () and n.dtype.is_float:
        return B.apply("neg", n)
    if n.op.name in ("mul", "div") and n.dtype.is_float and single_use(n):
        for k in (0, 1):
            inner = negated_free(n.inputs[k], like, single_use)
            if inner is not None:
                args = list(n.inputs)
                args[k] = inner
                return B.apply(n.op, *args)
    return None


def negation_into_factor(n: Node, single_use) -> Node | None:
    """-(a b) as (-a) b (and a / b likewise) where a's sign flips for free (negated_free)."""
    if n.op.name != "neg" or n.inputs[0].shape != n.shape or not n.dtype.is_float:
        return None
    inner = n.inputs[0]
    if inner.op.name not in ("mul", "div"):
        return None
    out = negated_free(inner, n, single_use)
    return out if out is not None and same_type(out, n) else None
