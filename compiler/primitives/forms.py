"""Stable forms: composite primitives spelled in primitives after differentiation (-O1).

FORMS holds them as named rules (core/rewrite.py); passes/expand.py applies them. Sigmoid,
softplus and bce_with_logits are spelled with
e = exp(-|z|):

    sigmoid(z)             = 1 / (1 + exp(-z)), or where(z >= 0, 1, e) / (1 + e) in a
                             module with softplus (one exp shared with the loss, not two)
    softplus(z)            = relu(z) + log(1 + e)
    bce_with_logits(z, y)  = relu(z) - z y + log(1 + e)

and cross_entropy along the class axis, with d = z - max(z) and s = sum(exp(d)), and in a
module with a cross_entropy, softmax too (as sigmoid: where it shares work, not elsewhere):

    cross_entropy(z, k)    = log(s) - (z[k] - m)       z[k]: a gather of one value a row
    softmax(z)             = exp(d) / s

so the elementwise kernels run them as plain ufuncs, and a loss and its gradient share
work through CSE (cross_entropy's gradient softmax(z) - onehot(k) reuses d, exp(d) and s,
and subtracts the one-hot by a scatter of -1 at the labels, in place: primitives/nn.py).
The forms are as accurate as the helpers were: e is at most 1, and
1 / (1 + exp(-z)) keeps its relative accuracy in both tails (at z < -88 in f32 exp(-z)
overflows to inf and the result is exactly 0, which is the rounded value; generated
functions never warn about that). A `where` choosing between two formulas would be
exact too, but NumPy's where is ten times slower than a ufunc; the shared form pays
for its select (a bitwise one in fused kernels) only where it saves an exp.

log(1 + e) rather than log1p(e): with e in (0, 1] both are accurate to about one ulp in
absolute terms, which is what a sum of losses needs, and NumPy's float32 log1p is scalar
code several times slower than log. f64 keeps log1p.

A form is given the node and the set of ops in its module: sigmoid and softmax take the
sharing form only where there is a loss to share with.
"""
from __future__ import annotations

from ..core.ir import Node
from ..core.rewrite import Op, Rule, RuleSet
from . import algebra as B
from .nn import pick_label


def _e(z: Node) -> Node:
    return B.apply("exp", B.apply("neg", B.apply("abs", z)))


def _log_one_plus(e: Node) -> Node:
    if e.dtype.itemsize >= 8:
        return B.apply("log1p", e)
    return B.apply("log", B.apply("add", B.like_const(1, e), e))


def sigmoid_form(n: Node, ops) -> Node:
    z = n.inputs[0]
    one = B.like_const(1, z)
    if ops & {"softplus", "bce_with_logits"}:  # where(z >= 0, 1, e) / (1 + e): reuses the e (and 1 + e)
        e = _e(z)  # a softplus of z computes; as 0 <= e <= 1 the where is max(e, z >= 0) (NaN stays NaN)
        pick = B.apply("maximum", e, B.cast(B.apply("ge", z, B.like_const(0, z)), z.dtype))
        return B.apply("div", pick, B.apply("add", one, e))
    return B.apply("div", one, B.apply("add", one, B.apply("exp", B.apply("neg", z))))


def softplus_form(n: Node, ops) -> Node:
    z = n.inputs[0]
    return B.apply("add", B.apply("relu", z), _log_one_plus(_e(z)))


def bce_with_logits_form(n: Node, ops) -> Node:
    z, y = n.inputs
    out = B.apply("add", B.apply("sub", B.apply("relu", z), B.apply("mul", z, y)), _log_one_plus(_e(z)))
    return out if out.shape == n.shape else B.broadcast_to(out, n.shape)


def _shifted(z: Node, axis: int) -> tuple[Node, Node]:
    """d = z - m and s = sum(exp(d)) along axis (kept as a length-1 axis), m = max(z) where
    that is finite and 0 elsewhere, as the helpers do: a +inf logit then gives an infinite
    loss, not inf - inf = nan."""
    m = _shift(z, axis)
    d = B.sub(z, m)
    return d, B.apply("sum", B.apply("exp", d), axes=(axis,), keepdims=True)


def _shift(z: Node, axis: int) -> Node:
    return B.apply("finite_or_zero", B.apply("max", z, axes=(axis,), keepdims=True))


def softmax_form(n: Node, ops) -> Node:
    if "cross_entropy" not in ops:
        return n  # the in-place helper: nothing to share (fewer temporaries, notably on CuPy)
    d, s = _shifted(n.inputs[0], n.attr("axis"))
    return B.div(B.apply("exp", d), s)


def cross_entropy_form(n: Node, ops) -> Node:
    """log(s) - d[label], d[label] = z[label] - m gathered (one value a row, not a one-hot mask
    over all of z): the same rounding as picking from d, and d need not be kept; the gather
    checks the labels as the helper does."""
    z, labels = n.inputs
    axis = z.type.rank - 1
    m = _shift(z, axis)
    _, s = _shifted(z, axis)
    per_row = B.sub(B.apply("log", s), B.sub(pick_label(z, labels), m))
    return B.apply("sum", per_row, axes=(axis,), keepdims=False)  # (of one: keeps a fused loop's sink)


# The rule set passes/expand.py applies once per node; a rule's env is the set of op names in
# the module (sigmoid and softmax take the sharing form only where there is a loss to share with).
FORMS = RuleSet("forms")
for _op, _form, _name in (
    ("sigmoid", sigmoid_form, "sigmoid(z) = 1 / (1 + exp(-z)), or shared with a softplus's exp(-|z|)"),
    ("softplus", softplus_form, "softplus(z) = relu(z) + log(1 + exp(-|z|))"),
    ("bce_with_logits", bce_with_logits_form, "bce_with_logits(z, y) = relu(z) - z y + log(1 + exp(-|z|))"),
    ("softmax", softmax_form, "softmax(z) = exp(d) / sum(exp(d)), d = z - max(z), beside a cross_entropy"),
    ("cross_entropy", cross_entropy_form, "cross_entropy(z, k) = log(sum(exp(d))) - d[k], d = z - max(z)"),
):
    FORMS.add(Rule(_name, Op(_op), lambda m, form=_form: form(m.node, m.env)))
