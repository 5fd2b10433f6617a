"""The NumPy loop writer's peepholes: named rules, each with the measurement behind it.

A fused loop writes one ufunc call per node by default (writer.py). Where NumPy has a faster
or leaner way for a node in its context, a rule here says which; the writer asks
PEEPHOLES.first(node, Ask(writer, role), question=role) and writes what the answer names.
`role`, the question each rule says it answers, is "member" (a node computed block by block:
may another node's call compute it?), "emit" (how is this member written?) or "sink" (how is
a block's part of a reduction over the rows totalled?). Timings: NumPy 2.4, one 512x256 float32 block unless said, best of 7.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from ...core.primitive import REGISTRY, ops
from ...core.rewrite import Op, RuleSet, Wild
from ...core.types import DType, dim_prod
from ...primitives import catalog  # noqa: F401  (the records the patterns below name)


class Peephole(enum.Enum):
    PRODUCT_IN_SUM = "computed by the einsum of the sum that reads it"
    COMPARE_IN_CAST = "computed by the ufunc of the cast that reads it"
    ROW_SUM_IN_TOTAL = "summed by the total that reads it"
    TOTAL_OF_ROWS = "the total of the row sums' input, at once"
    PRODUCT_TOTAL = "one einsum of the product's operands"
    COLUMN_SUM = "ones @ block"
    UFUNC_TOTAL = "the ufunc's reduce"
    SELECT = "a bitwise select"
    SCALAR_ROW = "its scalar operand as a row"


@dataclass
class Ask:
    writer: object  # writer.KernelWriter: readers, outputs, folded and summed so far, the backend
    role: str  # member | emit | sink


# the integer type holding each dtype's bits (f16 has no integer twin among tapeless dtypes: np.where)
INT_OF = {DType.F32: DType.I32, DType.F64: DType.I64, DType.I32: DType.I32, DType.I64: DType.I64}

PEEPHOLES = RuleSet("numpy loop peepholes")


def _only_reader(w, n):
    readers = w.readers.get(n.id, [])
    return readers[0] if len(readers) == 1 and n.id not in w.outputs else None


# ---- members another node's call computes ---------------------------------------------------------
@PEEPHOLES.rule("x * y read only by a sum: the sum computes it as one einsum", Op(ops.mul), question="member")
def product_in_sum(m):
    """No block of the product is stored, and one pass instead of two: multiply then
    sum(axis=1) 92-94 us, einsum('ab,ab->a') 41 us; multiply then add.reduce 78-79 us,
    einsum('ab,ab->') 39-44 us."""
    w, n = m.env.writer, m.node
    reader = _only_reader(w, n)
    if reader is None or reader.op is not ops.sum or n.type.rank > 16:
        return None
    return Peephole.PRODUCT_IN_SUM if not any(i.is_literal for i in n.inputs) else None


# the ops a fused loop computes as one ufunc call giving bools: comparisons and logic (the
# nondifferentiable ones); by pattern, so the question about every other member is not put to it
_BOOL_UFUNC_OPS = tuple(p for p in REGISTRY.values() if p.ufunc is not None and not p.differentiable)


@PEEPHOLES.rule("a comparison read only by a cast to numbers: the ufunc writes the numbers",
                 Op(_BOOL_UFUNC_OPS, where=lambda n: n.dtype == DType.BOOL), question="member")
def compare_in_cast(m):
    """greater(x, y, out=block of f32) instead of a bool block and a copy: the same time here
    (34-35 us against 33-34 us), and one scratch block of bools fewer."""
    reader = _only_reader(m.env.writer, m.node)
    if reader is None or reader.op is not ops.cast or reader.dtype == DType.BOOL:
        return None
    return Peephole.COMPARE_IN_CAST


@PEEPHOLES.rule("a row sum read only by a total of everything: the total sums its input at once",
                 Op(ops.sum), question="member")
def row_sum_in_total(m):
    """mean(cross_entropy): add.reduce over the block, one call, 30-42 us against sum(axis=1)
    then add.reduce 43-58 us."""
    w, n = m.env.writer, m.node
    reader = _only_reader(w, n)
    if reader is None or n.inputs[0].id in w.folded or n.dtype != n.inputs[0].dtype:
        return None
    if reader not in w.k.sinks or reader.op is not ops.sum or reader.attr("keepdims"):
        return None
    return Peephole.ROW_SUM_IN_TOTAL if len(reader.attr("axes")) == n.type.rank else None


# ---- how members are written ----------------------------------------------------------------------
@PEEPHOLES.rule("where(c, a, b) as b ^ ((a ^ b) & m) on the values' bits", Op(ops.where), question="emit")
def select(m):
    """Exact (NaN payloads, signed zeros) and ten times faster than numpy.where; the mask is one
    byte a value (c's bools negated as int8, widened by the and): with a zero branch, 103 -> 69
    us against a full-width mask, and a quarter of its scratch."""
    return Peephole.SELECT if m.node.dtype in INT_OF else None


# the ops whose loop gives their ufunc a row of a scalar operand (Loop.row: relu, maximum, minimum);
# by pattern, so the writer's question about every other member is not put to this rule at all
_ROW_OPS = tuple(p for p in REGISTRY.values() if p.loop is not None and p.loop.row)


@PEEPHOLES.rule("a scalar operand of maximum or minimum as a row, in float32", Op(_ROW_OPS), question="emit")
def scalar_row(m):
    """NumPy 2.4 on AVX2: maximum(x, 0) on 128K elements 65-95 us, against a (1, 256) row of
    zeros 32-36 us (add or multiply: no difference; with AVX-512 kernels the row is 10% slower,
    kept: the loss there is small). Only for rows of 64 elements or more: a shorter row
    broadcast over many rows costs more than the scalar."""
    n = m.node
    if n.dtype != DType.F32:
        return None
    width = dim_prod(n.shape[1:])
    return Peephole.SCALAR_ROW if isinstance(width, int) and width >= 64 else None


# ---- how a block's part of a reduction over the rows is totalled --------------------------------
@PEEPHOLES.rule("a sink over a row sum the total absorbed: the total of that row sum's input",
                 Op(ops.sum), question="sink")
def total_of_rows(m):
    w, s = m.env.writer, m.node
    return Peephole.TOTAL_OF_ROWS if s.inputs[0].id in w.summed else None


@PEEPHOLES.rule("a sink over a product it absorbed: one einsum of the product's operands",
                 Op(ops.sum), question="sink")
def product_total(m):
    w, s = m.env.writer, m.node
    return Peephole.PRODUCT_TOTAL if s.inputs[0].id in w.folded else None


@PEEPHOLES.rule("a sum over the leading axes as ones @ block", Op(ops.sum), question="sink")
def column_sum(m):
    """A bias gradient (axis 0; W5's c: all but the last): BLAS's matrix-vector product is 2-5x
    faster than NumPy's reduction (512x256 float32: 32 -> 15 us; 15x128x64 over two axes: 48 ->
    10 us) and as accurate (both accumulate down the rows in the block's precision)."""
    w, s = m.env.writer, m.node
    x, axes = s.inputs[0], s.attr("axes")
    ok = (w.ctx.backend.caps.gemv_column_sums and axes == tuple(range(len(axes)))
          and len(axes) < x.type.rank and not s.attr("keepdims") and x.dtype in (DType.F32, DType.F64)
          and s.dtype == x.dtype)
    return Peephole.COLUMN_SUM if ok else None


@PEEPHOLES.rule("a block's float total (sum, max, min) by the ufunc's reduce", Wild(), question="sink")
def ufunc_total(m):
    """np.sum's Python wrapper costs ~3 us a call, and a loop calls it once per block (W2:
    hundreds of blocks); add.reduce(block, axis=None) does not."""
    s = m.node
    if s.op.loop.images is not None:
        return None  # (a convolution's w gradient: no axes, its own helper)
    ok = len(s.attr("axes")) == s.inputs[0].type.rank and s.dtype == s.inputs[0].dtype and s.dtype.is_float
    return Peephole.UFUNC_TOTAL if ok else None


def _heads(rule_fn) -> frozenset[str]:
    return next(r.pattern.heads() for r in PEEPHOLES.rules if r.apply is rule_fn)


_COMPUTED_LATE, _READS_AFTER_WRITING = _heads(product_in_sum), _heads(select)  # (asked once per node)


def computed_late(node) -> bool:
    """A node product_in_sum may hand to the sum that reads it: its inputs are still read
    where that sum is (the loop plan's memory reuse must know; the plan asks before the writer
    decides, so this is the rule's pattern, conservatively)."""
    return node.op.name in _COMPUTED_LATE


def reads_after_writing(node) -> bool:
    """A node `select` writes: it reads its operands after it has written its output."""
    return node.op.name in _READS_AFTER_WRITING


def _role_heads(role: str) -> frozenset[str] | None:
    """The ops a rule answering `role` may match (None: any op)."""
    names: set[str] = set()
    for r in PEEPHOLES.rules:
        if r.question in (role, None):
            heads = r.pattern.heads() if r.pattern is not None else None
            if heads is None:
                return None
            names |= heads
    return frozenset(names)


_ROLE_HEADS = {role: _role_heads(role) for role in ("member", "emit", "sink")}  # (most members: no rule)


def ask(env: Ask, node) -> Peephole | None:
    """The peephole for node in env's role (a writer keeps one Ask per role), or None."""
    heads = _ROLE_HEADS[env.role]
    if heads is not None and node.op.name not in heads:
        return None
    hit = PEEPHOLES.first(node, env, question=env.role)
    return None if hit is None else hit[1]
