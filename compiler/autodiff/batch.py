"""Is a scalar fn's value a sum, or a mean, over one size symbol's axis of per-example terms?

For each size symbol S of a scalar fn F's parameter types, `batch_table` decides whether

    F = N^p * sum_i g_i(example i)          (N the size S takes, p an integer)

where example i is index i along S's axis of every parameter that has S, and the other
parameters do not depend on the examples. Then F's gradient splits over shards of the examples:
a shard k of n_k examples computes F_k = n_k^p sum_(i in k) g_i, and F (with every gradient) is
sum_k (n_k / N)^(-p) F_k: shard values add for a sum (p = 0) and are weighted by n_k / N for a
mean (p = -1). tapeless.runtime.dask_grad reads the answer from `__tapeless__`.

One walk over F's nodes per symbol puts each node in one class:

    Free(q)       does not depend on the examples; N^q times something that does not depend on
                  N either (N enters a shard's value as n_k, so its powers are tracked); q None:
                  N enters otherwise (log(N), N - 1) and `why` is where
    Per(axis, q)  has S's axis at `axis`; element i depends on example i alone (times N^q)
    Summed(p)     N^p times a sum over the examples of per-example terms, of any shape (a loss's
                  sum, x.T @ d); `stray` a term free of the examples added to it, which a shard
                  would count once each (fine for a mean: the n_k / N weights count it once)
    Coupled       the examples meet: the reason names the operation and where it is

The per-axis facts come from the records' `axis_map` facet (primitives/axis_maps.py): where each
input axis runs, is summed away, or mixes. Linearity comes from the records' rule shapes: a sum
of examples stays one through an op linear in it (rule_shape "linear": add, a reshape, a sum over
another axis) or bilinear with a free operand (a product, x.T @ d), and through a division by a
free value; anything else of a Summed value couples (tanh of a sum, a batch norm's x - mean).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.ir import Function, Node, graph_scope, topo_order
from ..core.primitive import ops
from ..core.source import SourceFile
from ..core.substitute import with_calls_expanded
from ..core.types import Dim


@dataclass(frozen=True)
class Free:
    q: int | None
    why: Node | None = None


@dataclass(frozen=True)
class Per:
    axis: int
    q: int | None


@dataclass(frozen=True)
class Summed:
    p: int
    origin: Node
    stray: Node | None = None


@dataclass(frozen=True)
class Coupled:
    reason: str


def batch_table(fn: Function, source: SourceFile | None = None) -> dict[str, tuple] | None:
    """{symbol: answer} for a fn of one floating scalar result with size symbols in its parameter
    types; None for any other function. An answer is plain data:

        ('total', p)            F = N^p sum_i g_i, p != -1 (0: a plain sum)
        ('mean', -1)            F = N^-1 sum_i g_i
    (the word is `total`, not `sum`, which names the primitive)
        ('coupled', reason)     an operation makes the examples meet (the reason names it, with
                                its file:line:col)
        ('free_term', reason)   a sum with a term that does not depend on the examples
        ('unbatched', reason)   the value does not depend on the examples along S
    """
    if fn.derivative is not None or len(fn.outputs) != 1:
        return None
    out = fn.outputs[0]
    if out.type.rank != 0 or not out.dtype.is_float:
        return None
    symbols = sorted({s for p in fn.params for d in p.shape if isinstance(d, Dim) for s in d.symbols})
    if not symbols:
        return None
    with graph_scope():  # (calls expanded in a table of their own: nothing is added to the module's)
        expanded = with_calls_expanded(fn)
        order = topo_order(expanded.outputs)
    return {s: _answer(_Walk(s, source).run(order)[expanded.outputs[0]], s, source) for s in symbols}


def _answer(c, s: str, source) -> tuple:
    if isinstance(c, Coupled):
        return ("coupled", c.reason)
    if isinstance(c, Summed):
        if c.stray is not None:
            return ("free_term", f"the term {_quote(c.stray, source)} does not depend on the examples along {s}: "
                                 f"in a sum over {s} every shard would add it once (make the value a mean over "
                                 f"{s}, or scale the term by {s})")
        return ("mean", -1) if c.p == -1 else ("total", c.p)
    if isinstance(c, Free) and c.q is None:
        return ("unbatched", f"the value does not depend on the examples along {s}, and it uses {s} "
                             f"other than as a power: {_quote(c.why, source)}")
    return ("unbatched", f"the value does not depend on the examples along {s}")


def _quote(node: Node, source: SourceFile | None, named: bool = True) -> str:
    """`op` at file:line:col (`its source text`); without the op's name when `named` is false."""
    span = node.span
    if span is None:
        return f"`{node.op.name}`"
    text = ""
    if source is not None:
        line = source.line_text(span.line)
        text = line[span.col - 1:span.end_col - 1] if span.end_line == span.line else line[span.col - 1:] + " ..."
        text = " ".join(text.split())
        if len(text) > 48:
            text = text[:45] + "..."
    return (f"`{node.op.name}` " if named else "") + f"at {span}" + (f" (`{text}`)" if text else "")


def _symbol_degree(d, s: str):
    """d as c N^e with c free of N: e (0 where N does not appear); None for a sum of several powers."""
    if not isinstance(d, Dim):
        return 0
    powers = {m.count(s) for m, _ in d.terms}
    return powers.pop() if len(powers) == 1 else None


class _Walk:
    def __init__(self, s: str, source: SourceFile | None):
        self.s = s
        self.source = source

    def run(self, order: list[Node]) -> dict[Node, object]:
        cls: dict[Node, object] = {}
        for n in order:
            cls[n] = self.leaf(n) if not n.inputs else self.node(n, [cls[i] for i in n.inputs])
        return cls

    def at(self, n: Node) -> str:
        return _quote(n, self.source)

    # ---- leaves and constructors ----------------------------------------------------------------
    def leaf(self, n: Node):
        s = self.s
        if n.is_dim:
            q = _symbol_degree(n.attr("dim"), s)
            return Free(q, None if q is not None else n)
        if n.is_param:  # (a fn's parameter sizes are ints and symbols: the language has no N - 1 there)
            name = n.attr("name")
            axes = [a for a, d in enumerate(n.shape) if d == Dim.symbol(s)]
            if len(axes) > 1:
                return Coupled(f"parameter `{name}` has {s} on {len(axes)} axes: its elements pair "
                               f"examples with each other")
            return Per(axes[0], 0) if axes else Free(0)
        return self.made(n, [])

    def made(self, n: Node, ins: list):
        """A node all of whose inputs are free of the examples (a constructor: none)."""
        axes = self.s_axes(n)
        if axes is None:
            return Coupled(f"{self.at(n)} makes a size from {self.s} other than {self.s} itself")
        q = self.degree(n, [c.q for c in ins])
        if not axes:
            if q is None:
                why = next((c.why for c in ins if c.q is None), None)
                return Free(None, why or n)
            return Free(q)
        # a new axis of S: fine where the value is the same all along it (zeros([N]), a broadcast)
        if len(axes) == 1 and (n.op is ops.full or n.op is ops.broadcast_to):
            return Per(axes[0], q) if q is not None else self.nonpower(n, ins)
        return Coupled(f"{self.at(n)} depends on the position along {self.s}")

    # ---- the others -----------------------------------------------------------------------------
    def node(self, n: Node, ins: list):
        for c in ins:
            if isinstance(c, Coupled):
                return c
        summed = [c for c in ins if isinstance(c, Summed)]
        per = [(k, c) for k, c in enumerate(ins) if isinstance(c, Per)]
        if summed and per:
            return Coupled(f"{self.at(n)} combines each example with the sum over {self.s} made by "
                           f"{self.at(summed[0].origin)}")
        if summed:
            return self.of_summed(n, ins, summed)
        if per:
            return self.of_per(n, ins, per)
        return self.made(n, ins)

    def of_summed(self, n: Node, ins: list, summed: list[Summed]):
        op, s = n.op, self.s
        first = summed[0]
        free = [(i, c) for i, c in zip(n.inputs, ins) if isinstance(c, Free)]
        if any(c.q is None for _, c in free):
            return self.nonpower(n, ins)
        if self.linear(n):
            if any(c.p != first.p for c in summed):
                return self.powers(n)
            stray = next((c.stray for c in summed if c.stray is not None), None)
            for i, c in free:
                if not i.dtype.is_float:
                    if c.q != 0:
                        return self.nonpower(n, ins)
                elif c.q != first.p + 1 and stray is None:  # (N^(p+1) c = N^p sum_i c: a term per example)
                    stray = i
            return Summed(first.p, first.origin, stray)
        if len(summed) == 1 and (op.rule_shape == "bilinear"
                                 or (op is ops.div and isinstance(ins[0], Summed))):
            q = sum(c.q for _, c in free)
            return Summed(first.p + q if op is not ops.div else first.p - q, first.origin, first.stray)
        return Coupled(f"{self.at(n)} is not linear in the sum over {s} made by "
                       f"{self.at(first.origin)}")

    def of_per(self, n: Node, ins: list, per: list[tuple[int, Per]]):
        op, s = n.op, self.s
        if op.axis_map is None:
            return Coupled(f"{self.at(n)}: how it treats the axis of {s} is not known")
        if any(isinstance(c, Free) and c.q is None for c in ins):
            return self.nonpower(n, ins)
        maps = op.axis_map(n)
        targets = {maps[k][c.axis] for k, c in per}
        if None in targets:
            return Coupled(f"{op.name} along {s} {_quote(n, self.source, False)}")
        if len(targets) > 1:
            return Coupled(f"{self.at(n)} pairs examples along {s} with each other")
        (t,) = targets
        q = self.degree(n, [c.q for c in ins])
        axes = self.s_axes(n)
        if axes is None:
            return Coupled(f"{self.at(n)} makes a size from {s} other than {s} itself")
        if t >= 0:
            if axes != [t]:
                return Coupled(f"{self.at(n)} pairs examples along {s} with each other")
            return Per(t, q) if q is not None else self.nonpower(n, ins)
        # summed away
        if axes:
            return Coupled(f"{self.at(n)} pairs examples along {s} with each other")
        if op.rule_shape == "linear" and len(per) == 1 or op.rule_shape == "bilinear":
            return Summed(q, n) if q is not None else self.nonpower(n, ins)
        return Coupled(f"{op.name} over {s} {_quote(n, self.source, False)}")

    # ---- facts ----------------------------------------------------------------------------------
    def s_axes(self, n: Node) -> list[int] | None:
        """The axes of n of size S; None when a size is made from S otherwise (N - 1, 2 N)."""
        s, out = self.s, []
        for a, d in enumerate(n.shape):
            if isinstance(d, Dim) and s in d.symbols:
                if d != Dim.symbol(s):
                    return None
                out.append(a)
        return out

    @staticmethod
    def linear(n: Node) -> bool:
        """Linear in its floating operands together (their sum is the op of each, added)."""
        return n.op.rule_shape == "linear" or n.op is ops.neg or n.op.detaches

    def degree(self, n: Node, qs: list) -> int | None:
        """The power of N of n's value from its inputs' (None: not one power)."""
        if any(q is None for q in qs):
            return None
        if not qs:
            return 0
        floats = [q for i, q in zip(n.inputs, qs) if i.dtype.is_float]
        others = [q for i, q in zip(n.inputs, qs) if not i.dtype.is_float]
        if self.linear(n):
            if any(others) or len(set(floats)) > 1:
                return None
            return floats[0] if floats else 0
        if n.op.rule_shape == "bilinear":
            return sum(qs)
        if n.op is ops.div:
            return qs[0] - qs[1]
        return 0 if not any(qs) else None

    def nonpower(self, n: Node, ins: list):
        """n's value is not N^q times something free of N: a shard, which sees n_k for N, differs."""
        why = next((c.why for c in ins if isinstance(c, Free) and c.q is None), None)
        if why is not None:
            return Coupled(f"{self.at(n)} uses {self.s} other than as a power ({self.at(why)}): a shard "
                           f"would see its own size for {self.s}")
        return Coupled(f"{self.at(n)} combines values scaled by different powers of {self.s} (a shard, "
                       f"which sees its own size for {self.s}, would differ)")

    def powers(self, n: Node):
        return Coupled(f"{self.at(n)} adds sums over {self.s} scaled by different powers "
                       f"of {self.s} (a mean and a sum, say)")
