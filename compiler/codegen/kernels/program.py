"""A fused kernel (fused/plan.py's Kernel) as a backend-neutral scalar program.

The NumPy backend writes a Kernel as a blocked loop of ufunc calls (fused/writer.py). A
compiled backend (numba here, CuPy's ElementwiseKernel/ReductionKernel) writes the same
Kernel from this Program instead: one scalar step per member, written from the member's
`scalar` facet (the C-like template over {0}, {1}, ... of primitives/common.py), so every
backend fuses the same chains, written from one source.

Interface (stable: later additions are new fields, never renames)
-----------------------------------------------------------------
    program = build(kernel, hint, functions=NUMBA_SCALAR_SET)   # or is_member(...) / is_sink(...) first

    Program
      operands: [Operand(name, node, dtype, shape)]   arrays (or 0-d values) the kernel reads,
                                                      computed outside it
      outputs:  [Output(name, node, dtype, shape, accumulate)]   full arrays the kernel writes;
                accumulate: the variable of the caller's out= buffer the kernel may add into
                (None when the output is a plain result)
      sinks:    [Sink]            reductions over the rows (axis 0 among their axes): each block
                                  of rows makes a partial, combined across blocks in block order
                                  after the loop (Sink.combine: "sum" | "max" | "min")
      sizes:    {Dim: str}        the symbolic sizes the program mentions, each with a parameter
                                  name (a renderer passes them in; literal ints are written as such)
      rows:     int | Dim         the row count (axis 0 of every stage's space)
      stages:   [Stage]           for each row, all stages in order (below)
      places:   [str]             the `file.tl:LINE`s of the kernel's nodes, sorted
      scatters: [ScatterInto(name, part, base, items, sign)]   views base[items] the kernel adds
                                  slice cotangents into (Scatter steps)
      spreads:  [int | Dim]       when a view's rows are shifted (x[1:]'s cotangent into x's
                                  gradient): how far, at most (base rows - kernel rows). Row r of
                                  the kernel then adds into base rows r .. r + spread, so blocks
                                  of at least that many rows, run evens then odds, never share one

    A renderer runs, for each row r (rows are independent; blocks of rows may run in parallel):
        for stage in stages:
            stage.row_steps        (once per row, before the nest)
            for each point p of stage.space[1:] (nested loops over the trailing axes):
                stage.steps        (in order)
            stage.after            (once per row, after the nest: Stores of reductions done here)
    Rows never talk to each other except through sinks, and Scatters into rows shifted from their
    own (Program.spreads: the renderer keeps blocks that share a row of the base apart).

    Stage(space, row_steps, steps, after)
      space: tuple of dims (rows first). A step's values are scalars at one point of it.

    The step kinds (each with .name and .dtype, node and `where`, the node's `file.tl:LINE`):
      Step(name, expr, dtype, node, recomputed, args)
            name = expr. recomputed: a repeat in a later stage of a step an earlier stage
            computed (the value is needed again at each point; recomputing is cheaper than
            storing it); it has the same name and expr as the first. args: an elementwise
            member's operands as SExprs (node.op over them is the step: a backend with its own
            form of the whole op, numba's sigmoid, may write that instead of expr).
      Reduce(name, op, value, axes, index, shape, dtype, acc_dtype, node)
            a reduction over trailing axes of the stage (op "sum" | "max" | "min" | "prod"),
            of `value` (an SExpr at each point); its result has the node's shape (rows first,
            the reduced axes gone or 1 with keepdims); `index` maps each result axis to a stage
            axis (None: a kept size-1 axis, index 0). Accumulated in acc_dtype (f32 sums: f64),
            the accumulator set to the identity in row_steps (renderer's job), complete after
            the nest. Read by later stages through Reduced(...).
      Sink(name, op, value, index, shape, dtype, acc_dtype, combine, node)
            like Reduce, but over the rows too: per-block partials of shape `shape` (the node's),
            `index` maps each result axis to a stage axis (None: reduced or size 1).
      Store(output, value, index, node)
            output[index] = value (or += into the caller's buffer when Output.accumulate is set
            and a buffer is given). index: one entry per output axis (stage axis or None).
      Scatter(target, value, index, sign, node, offset)
            target[index (+ offset)] += value (sign -1: -=): a slice cotangent added into its base
            (fused/plan.py's Kernel.scatters), never written whole. target: a ScatterInto of
            Program.scatters, a view base[items] the caller passes (the part's shape, so the
            index is the part's own), or with see_through the base itself and the slice's start
            as offset; placed right after the part's step when the base's row is complete there,
            else in a stage of its own at the end of the row (the part made again).

    Expressions (SExpr: every one has .dtype; literals are typed):
      Const(value, dtype)            a Python number (bool/int/float, inf and nan included) or a
                                     Dim (a size, via Program.sizes) of the given dtype
      Load(operand, index, dtype, offset)
                                     an operand's element; index: per operand axis, the stage
                                     axis it runs along (0 = the row) or None (a size-1 axis: 0);
                                     offset: () or per axis, an int or Dim added to it (a slice
                                     x[:, 1:] read as x at j1 + 1: build(..., see_through=True))
      Ref(name, dtype)               a step's value at this point (or a row-level step's)
      Reduced(name, index, dtype)    a finished Reduce's value (index as Load's, over its shape);
                                     dtype is the node's: a renderer casts from acc_dtype
      Unary(op, a, dtype)            op in "-", "!"
      Binary(op, a, b, dtype)        op in + - * / == != < <= > >= && ||
      Call(fn, args, dtype)          fn in primitives.common.SCALAR_FUNCTIONS; select(c, a, b);
                                     cast(a) (its target type is .dtype); max/min propagate NaN
      Index(axis, dtype)             the point's position along stage axis `axis` (never 0), an
                                     integer (the class compared with a label: pick_label, sub_label)
    text(expr) writes an SExpr back in the C-like language (comments, tests).

Which nodes join a kernel is the backend's predicate, given to plan(): `rules(functions)`
here is the one for compiled kernels: an elementwise op whose scalar facet calls only
`functions` (what the backend can compute), a sum/max/min/prod over trailing axes, and
sum/max/min over the rows as sinks. softmax, log_softmax, logsumexp and the like are not
members: they stay the NumPy backend's calls between kernels. `rules(functions, labels=True)`
also takes cross_entropy's label ops along a last axis that is not the rows: pick_label as a
row's sum of select(class == label, z, 0) (one term is not zero: the picked value exactly),
sub_label as p - select(class == label, amount, 0) (p exactly elsewhere); the labels are an
outside value (checked once, outside, by checked_labels).

Stages. A step joins the last stage when its shape fits the stage's space (same rank, each
trailing size equal or 1) and nothing it reads is a reduction finished only in that stage;
otherwise a new stage starts. A reduction needs a stage whose space is its operand's shape
exactly. A step whose trailing sizes are all 1 is row-level (computed once per row, in
row_steps); a reduction over such a value is a copy (a row-level Step).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ...core.ir import Node
from ...core.primitive import Kind, ops
from ...core.types import Dim, DType, dim_add, dim_sub
from ...primitives.common import SCALAR_FUNCTIONS, Scalar
from ..fused.plan import SHARED_RULES, Kernel, PlanRules
from ..names import Names, place

# ---- scalar expressions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Const:
    value: object
    dtype: DType


@dataclass(frozen=True)
class Load:
    operand: str
    index: tuple
    dtype: DType
    offset: tuple = ()  # per operand axis, added to its index (() : none)


@dataclass(frozen=True)
class Ref:
    name: str
    dtype: DType


@dataclass(frozen=True)
class Reduced:
    name: str
    index: tuple
    dtype: DType


@dataclass(frozen=True)
class Unary:
    op: str
    a: object
    dtype: DType


@dataclass(frozen=True)
class Binary:
    op: str
    a: object
    b: object
    dtype: DType


@dataclass(frozen=True)
class Call:
    fn: str
    args: tuple
    dtype: DType


@dataclass(frozen=True)
class Index:
    axis: int
    dtype: DType


SExpr = Const | Load | Ref | Reduced | Unary | Binary | Call | Index

# ---- the program ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operand:
    name: str
    node: Node
    dtype: DType
    shape: tuple


@dataclass(frozen=True)
class Output:
    name: str
    node: Node
    dtype: DType
    shape: tuple
    accumulate: str | None = None
    reuses: str | None = None  # an operand whose array this output is written into (overwrite())


@dataclass
class Step:
    name: str
    expr: object
    dtype: DType
    node: Node
    recomputed: bool = False
    args: tuple = ()  # an elementwise member's operands as SExprs (a backend with a form of the whole op uses them)

    @property
    def where(self) -> str:
        return place(self.node)


@dataclass
class Reduce:
    name: str
    op: str
    value: object
    axes: tuple  # stage axes reduced (never 0)
    index: tuple  # per result axis: the stage axis, or None
    shape: tuple  # the result's shape (rows first)
    dtype: DType
    acc_dtype: DType
    node: Node

    @property
    def where(self) -> str:
        return place(self.node)


@dataclass
class Sink:
    name: str
    op: str
    value: object
    index: tuple  # per result axis: the stage axis it keeps, or None (reduced, or size 1)
    shape: tuple
    dtype: DType
    acc_dtype: DType
    combine: str
    node: Node
    row_level: bool = False  # accumulated once per row (in row_steps), not at each point

    @property
    def where(self) -> str:
        return place(self.node)


@dataclass
class Store:
    output: str
    value: object
    index: tuple
    node: Node

    @property
    def where(self) -> str:
        return place(self.node)


@dataclass
class Scatter:
    target: str
    value: object
    index: tuple
    sign: int
    node: Node  # the part
    offset: tuple = ()  # (as Load's: the target is the base itself, the part at this offset in it)

    @property
    def where(self) -> str:
        return place(self.node)


@dataclass(frozen=True)
class ScatterInto:
    name: str
    part: Node
    base: Node
    items: tuple  # the index of the part in its base (fused/plan.py's Kernel.scatters): the view
    sign: int
    whole: bool = False  # the base itself is passed (the Scatter steps carry the offset)
    output: str | None = None  # ... or is this kernel's output of that name: no array passed


@dataclass
class Stage:
    space: tuple
    row_steps: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    after: list = field(default_factory=list)

    @property
    def reduces(self) -> list:
        return [s for s in self.steps if isinstance(s, (Reduce, Sink))]


@dataclass
class Program:
    index: int
    rows: object
    operands: list
    outputs: list
    sinks: list
    sizes: dict
    stages: list
    places: list
    scatters: list = field(default_factory=list)
    spreads: list = field(default_factory=list)


# ---- which nodes may join (the compiled backends' predicate for plan()) -----------------------------------
def _reduction(n: Node) -> str | None:
    """The reduction a node is, by its record's loop facet (a `reducer`: sum, max, min, prod), by
    name (None: another op)."""
    return n.op.name if n.op.loop is not None and n.op.loop.reducer is not None else None


def calls(template: str) -> set[str]:
    return set(re.findall(r"([a-z_][a-z0-9_]*)\(", template))


def label_op(n: Node) -> bool:
    """pick_label or sub_label along a last axis that is not the rows, longer than 1, of labels
    that are never a kernel's member (build() writes them from Index; see the docstring)."""
    if n.op not in (ops.pick_label, ops.sub_label):
        return False
    z, labels = n.inputs[0], n.inputs[1]
    return z.type.rank >= 2 and z.shape[-1] != 1 and not labels.op.elementwise and labels.op.kind is not Kind.REDUCE


def rules(functions: Iterable[str], scatter: bool = False, remake: bool = False, labels: bool = False) -> PlanRules:
    """plan()'s predicates for a backend that computes the scalar functions `functions`; scatter,
    remake: its writer adds slice cotangents into their base (Program's Scatter steps) and makes
    cheap values of an earlier kernel again (PlanRules); labels: it renders Index, so
    cross_entropy's label ops join its kernels."""
    functions = frozenset(functions)

    def floats_ok(n: Node) -> bool:
        return n.dtype is not DType.F16 and all(i.dtype is not DType.F16 for i in n.inputs)

    # NumPy's blocked loops' predicates (fused/plan.py), narrowed to what a kernel can compute:
    # an elementwise op by its scalar expression, a reduction by its record's reducer; not the
    # row-wise ops (softmax: NumPy calls between kernels), not float16
    def member(n: Node) -> bool:
        if not SHARED_RULES.member(n) or not floats_ok(n):
            return False
        if labels and label_op(n):
            return True
        if n.op.elementwise:
            return n.op.scalar is not None and calls(n.op.scalar) <= functions
        return n.op.kind is Kind.REDUCE and _reduction(n) is not None

    def sink(n: Node) -> bool:  # (a reduction over the rows combined across blocks: sum, max, min)
        return SHARED_RULES.sink(n) and floats_ok(n)

    return PlanRules(member, sink, scatter=scatter, remake=remake)


# ---- parsing a scalar template ---------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(\{\w+\})|(\d+\.\d*(?:e-?\d+)?|\d+(?:e-?\d+)?)|([a-z_][a-z0-9_]*)|(&&|\|\||==|!=|<=|>=|[-+*/<>!(),]))")
_BINARY_PREC = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, "<=": 4, ">": 4, ">=": 4, "+": 5, "-": 5, "*": 6, "/": 6}
_COMPARE = {"==", "!=", "<", "<=", ">", ">="}
_LOGIC = {"&&", "||"}


class _Lit:
    """A number in a template, typed when its context is known."""

    def __init__(self, text: str):
        self.text = text


def parse(template: str, fill: Callable[[str], object]) -> object:
    """The template as an untyped tree: placeholders replaced by fill(name), numbers as _Lit,
    operators as ("bin", op, a, b) / ("un", op, a) / ("fn", fn, args)."""
    tokens = []
    pos = 0
    while pos < len(template):
        m = _TOKEN.match(template, pos)
        if m is None or m.end() == pos:
            if template[pos:].strip() == "":
                break
            raise ValueError(f"cannot read scalar template {template!r} at {pos}")
        pos = m.end()
        ph, num, ident, op = m.groups()
        tokens.append(("ph", ph[1:-1]) if ph else ("num", num) if num else ("id", ident) if ident else ("op", op))
    at = [0]

    def peek():
        return tokens[at[0]] if at[0] < len(tokens) else ("end", None)

    def take():
        t = peek()
        at[0] += 1
        return t

    def primary():
        kind, v = take()
        if kind == "ph":
            return fill(v)
        if kind == "num":
            return _Lit(v)
        if kind == "id":
            if v not in SCALAR_FUNCTIONS:
                raise ValueError(f"{template!r}: {v} is not a scalar function")
            assert take() == ("op", "(")
            args = []
            if peek() != ("op", ")"):
                args.append(expr(0))
                while peek() == ("op", ","):
                    take()
                    args.append(expr(0))
            assert take() == ("op", ")"), template
            return ("fn", v, args)
        if (kind, v) == ("op", "("):
            e = expr(0)
            assert take() == ("op", ")"), template
            return e
        if (kind, v) in (("op", "-"), ("op", "!")):
            return ("un", v, unary())
        raise ValueError(f"cannot read scalar template {template!r}")

    def unary():
        return primary()

    def expr(min_prec):
        left = unary()
        while True:
            kind, v = peek()
            prec = _BINARY_PREC.get(v) if kind == "op" else None
            if prec is None or prec <= min_prec:
                return left
            take()
            right = expr(prec)
            left = ("bin", v, left, right)

    e = expr(0)
    if peek()[0] != "end":
        raise ValueError(f"cannot read scalar template {template!r}: {peek()}")
    return e


def _typed_known(e) -> bool:
    return not isinstance(e, _Lit) and not (isinstance(e, tuple) and _all_literal(e))


def _all_literal(e) -> bool:
    if isinstance(e, _Lit):
        return True
    if isinstance(e, tuple):
        if e[0] == "un":
            return _all_literal(e[2])
        if e[0] == "bin":
            return _all_literal(e[2]) and _all_literal(e[3])
        if e[0] == "fn":
            return e[1] != Scalar.CAST and all(_all_literal(a) for a in e[2])
    return False


def typed(e, want: DType, cast_to: DType | None = None):
    """An untyped tree as SExpr: a literal takes the type of what it meets (the other operand,
    the other arguments), else `want`."""
    if isinstance(e, _Lit):
        v = float(e.text) if (want.is_float or "." in e.text or "e" in e.text) else int(e.text)
        if want is DType.BOOL:
            v = bool(v)
        elif want.is_float:
            v = float(v)
        else:
            v = int(v)
        return Const(v, want)
    if not isinstance(e, tuple):
        return e  # (a filled placeholder: already typed)
    kind = e[0]
    if kind == "un":
        op = e[1]
        a = typed(e[2], DType.BOOL if op == "!" else want)
        return Unary(op, a, DType.BOOL if op == "!" else a.dtype)
    if kind == "bin":
        op = e[1]
        if op in _LOGIC:
            a, b = typed(e[2], DType.BOOL), typed(e[3], DType.BOOL)
            return Binary(op, a, b, DType.BOOL)
        a, b = _pair(e[2], e[3], want if op not in _COMPARE else None)
        return Binary(op, a, b, DType.BOOL if op in _COMPARE else a.dtype)
    fn, args = e[1], e[2]
    if fn == Scalar.CAST:
        a = typed(args[0], want)
        return Call(Scalar.CAST, (a,), cast_to or want)
    if fn == Scalar.SELECT:
        c = typed(args[0], DType.BOOL)
        a, b = _pair(args[1], args[2], want)
        return Call(Scalar.SELECT, (c, a, b), a.dtype)
    known = [typed(a, want) for a in args if _typed_known(a)]
    dt = known[0].dtype if known else want
    out = tuple(typed(a, dt) for a in args)
    return Call(fn, out, dt if dt.is_float or fn in (Scalar.FABS, Scalar.MAX, Scalar.MIN, Scalar.SIGN) else want)


def _pair(x, y, want):
    if _typed_known(x):
        a = typed(x, want or DType.F64)
        return a, typed(y, a.dtype)
    if _typed_known(y):
        b = typed(y, want or DType.F64)
        return typed(x, b.dtype), b
    return typed(x, want or DType.F64), typed(y, want or DType.F64)


def text(e) -> str:
    """An SExpr in the C-like scalar language (for comments and tests)."""
    if isinstance(e, Const):
        return str(e.value)
    if isinstance(e, (Load, Reduced)):
        return f"{e.operand if isinstance(e, Load) else e.name}[{', '.join('0' if i is None else f'j{i}' for i in e.index)}]"
    if isinstance(e, Ref):
        return e.name
    if isinstance(e, Index):
        return f"j{e.axis}"
    if isinstance(e, Unary):
        return f"{e.op}({text(e.a)})"
    if isinstance(e, Binary):
        return f"({text(e.a)} {e.op} {text(e.b)})"
    if e.fn == Scalar.CAST:
        return f"cast({text(e.args[0])}, {e.dtype.short})"
    return f"{e.fn}({', '.join(text(a) for a in e.args)})"


# ---- building --------------------------------------------------------------------------------------------
def _row_level(shape) -> bool:
    return all(d == 1 for d in shape[1:])


def _fits(shape, space) -> bool:
    return len(shape) == len(space) and all(d == s or d == 1 for d, s in zip(shape[1:], space[1:]))


def _input_index(i: Node, n: Node) -> tuple:
    """For each axis of input i read by node n (n's axes are the stage's): the stage axis it runs
    along, or None (size 1 where n's is not, or n's own axis is size 1 in the stage)."""
    off = n.type.rank - i.type.rank
    out = []
    for k, d in enumerate(i.shape):
        axis = k + off
        out.append(None if (d == 1 and n.shape[axis] != 1) or (axis > 0 and n.shape[axis] == 1) else axis)
    return tuple(out)


def _compose(index: tuple, n: Node, space) -> tuple:
    """An index over n's axes made relative to the stage: a size-1 axis of n that the stage runs
    along reads index 0."""
    return tuple(None if a is None or (a > 0 and n.shape[a] == 1 and space[a] != 1) else a for a in index)


def _acc_dtype(op: str, dt: DType) -> DType:
    # f32 sums and products accumulate in f64: a row of 10^4 values or a total over 10^6 stays
    # within 1e-7 of the exact value (NumPy's pairwise f32 sum is about as good; a plain f32
    # loop is not), at the price of a conversion per element
    if op in (ops.sum.name, ops.prod.name):
        if dt.is_float:
            return DType.F64
        return DType.I64 if dt in (DType.BOOL, DType.I32, DType.I64) else dt
    return dt


def build(k: Kernel, hint: Callable[[Node], str | None], names: Names | None = None,
          accumulate: dict | None = None, name_of: Callable[[Node], str | None] | None = None,
          reusable=(), see_through: bool = False) -> Program:
    """The kernel as a Program. hint(node): a source name for a step (or None); names: where
    new names are taken (steps, operands, outputs never repeat one); accumulate: output node id
    -> the caller's out= buffer variable; name_of(node): an outside value's variable (the
    operand takes a name like it). see_through: a slice x[:, 1:] read (or added into) is x at
    an offset (Load.offset, Scatter.offset): a renderer whose compiler vectorises a contiguous
    array, never a strided view (numba: W13's column differences 3x faster)."""
    names = names or Names()
    accumulate = accumulate or {}
    members = {m.id: m for m in k.members}
    sink_ids = {s.id for s in k.sinks}
    operands: dict[int, Operand] = {}
    sizes: dict = {}
    step_name: dict[int, str] = {}
    home: dict[int, int] = {}  # member id -> the stage that first computes it
    reduce_stage: dict[int, int] = {}  # Reduce id -> its stage (its value is ready after)
    row_level: set[int] = set()
    stages: list[Stage] = []
    computed: list[set] = []  # per stage: the member ids computed there

    def size_of(d):
        if isinstance(d, Dim):
            if d not in sizes:
                sizes[d] = names.fresh("n" + str(len(sizes)))
        return d

    for m in k.members + k.sinks:
        for d in m.shape:
            size_of(d)

    def operand(i: Node) -> str:
        op = operands.get(i.id)
        if op is None:
            base = (name_of(i) if name_of else None) or hint(i) or "x"
            op = operands[i.id] = Operand(names.fresh(base.lstrip("_") or "x"), i, i.dtype, tuple(i.shape))
            for d in i.shape:
                size_of(d)
        return op.name

    def load(i: Node, index: tuple) -> Load:
        """i's element at index: of the array i slices, at an offset, when see_through allows."""
        # (the array sliced must be a variable of the caller's: not an expression written inline)
        shift = _slice_offset(i) if see_through else None
        if shift is not None and not (name_of is not None and name_of(i.inputs[0])):
            shift = None
        if shift is None:
            return Load(operand(i), index, i.dtype)
        for d in shift:
            size_of(d)
        return Load(operand(i.inputs[0]), index, i.dtype, shift)

    def ref(i: Node, n: Node, s: int):
        """What member/sink n at stage s reads for input i."""
        if i.is_literal:
            if i.is_dim:
                size_of(i.attr("dim"))
                return Const(i.attr("dim"), i.dtype)
            return Const(i.attr("value"), i.dtype)
        space = stages[s].space
        if i.id in members:
            if i.id in reduce_stage:
                return Reduced(step_name[i.id], _compose(_input_index(i, n), n, space), i.dtype)
            if i.id not in row_level and i.id not in computed[s]:
                recompute(i, s)
            return Ref(step_name[i.id], i.dtype)
        return load(i, _compose(_input_index(i, n), n, space))

    def expr_of(n: Node, s: int, args=None):
        args = [ref(i, n, s) for i in n.inputs] if args is None else args
        attrs = n.attr_dict

        def fill(key: str):
            if key.isdigit():
                return args[int(key)]
            v = attrs[key]
            return v.short if isinstance(v, DType) else v

        e = typed(parse(n.op.scalar, fill), n.dtype, cast_to=attrs.get("dtype") if isinstance(attrs.get("dtype"), DType) else None)
        if e.dtype != n.dtype:
            e = Call(Scalar.CAST, (e,), n.dtype)
        return e

    def recompute(m: Node, s: int) -> None:
        if label_op(m):
            stages[s].steps.append(Step(step_name[m.id], sub_label_expr(m, s), m.dtype, m, recomputed=True))
        else:
            args = tuple(ref(i, m, s) for i in m.inputs)
            stages[s].steps.append(Step(step_name[m.id], expr_of(m, s, args), m.dtype, m, recomputed=True, args=args))
        computed[s].add(m.id)

    def is_label(n: Node, s: int):
        """class == label at this point of stage s, for a label op n (the last axis is the class)."""
        z, labels = n.inputs[0], n.inputs[1]
        at = Load(operand(labels), tuple(range(labels.type.rank)), labels.dtype)
        return Binary("==", Index(z.type.rank - 1, DType.I64), at, DType.BOOL)

    def sub_label_expr(n: Node, s: int):
        """p - select(class == label, amount, 0): p's value exactly where the class is not the label."""
        p = ref(n.inputs[0], n, s)
        amount = ref(n.inputs[2], n, s) if len(n.inputs) > 2 else Const(1.0, n.dtype)
        if amount.dtype != n.dtype:
            amount = Call(Scalar.CAST, (amount,), n.dtype)
        return Binary("-", p, Call(Scalar.SELECT, (is_label(n, s), amount, Const(0.0, n.dtype)), n.dtype), n.dtype)

    def new_stage(space) -> int:
        stages.append(Stage(tuple(space) if space is not None else None))
        computed.append(set())
        return len(stages) - 1

    def ready_after(n: Node) -> int:
        """The first stage n may be in: after the stages of the reductions it reads."""
        at = 0
        for i in n.inputs:
            if i.id in reduce_stage:
                at = max(at, reduce_stage[i.id] + 1)
            elif i.id in row_level:
                at = max(at, home[i.id])
        return at

    def last_fits(n_shape, at: int, exact: bool) -> int | None:
        if not stages or len(stages) - 1 < at:
            return None
        st = stages[-1]
        if st.space is None:
            return len(stages) - 1
        if exact:
            if tuple(n_shape) == st.space:
                return len(stages) - 1
            return None
        if _fits(n_shape, st.space):
            return len(stages) - 1
        return None

    def store_of(m: Node, s: int, value, in_after: bool = False) -> None:
        if m.id not in outputs:
            return
        o = outputs[m.id]
        st = stages[s]
        space = st.space or tuple(m.shape)
        index = tuple(a if (a == 0 or m.shape[a] != 1) else None for a in range(m.type.rank))
        if m.id in reduce_stage:
            index = tuple(range(m.type.rank))  # (the renderer loops over the result's own shape)
        store = Store(o.name, value, index, m)
        if in_after:
            st.after.append(store)
        elif m.id in row_level:
            st.row_steps.append(store)
        else:
            st.steps.append(store)
        del space

    outputs: dict[int, Output] = {}
    for o in k.outputs:
        base = hint(o) or "t"
        outputs[o.id] = Output(names.fresh(base), o, o.dtype, tuple(o.shape), accumulate.get(o.id))

    # each sink right after the member it reads (or first, when it reads an outside value)
    sinks_of: dict[int, list[Node]] = {}
    for sn in k.sinks:
        sinks_of.setdefault(sn.inputs[0].id, []).append(sn)
    order: list[Node] = []
    for sn in k.sinks:
        if sn.inputs[0].id not in members:
            order.append(sn)
    for m in k.members:
        order.append(m)
        order += sinks_of.get(m.id, [])

    prog_sinks: list[Sink] = []
    for n in order:
        step_name[n.id] = names.fresh(hint(n) or ("acc" if n.id in sink_ids else "t"))
        if n.op is ops.pick_label and label_op(n):
            # z[..., label] as a row's sum of select(class == label, z, 0), in z's dtype: one term
            # is not 0, so the sum is that value exactly (z's other values, nan or inf, are not read)
            z = n.inputs[0]
            # the first stage over z's shape that may read it (with the row's max, in softmax's
            # first pass), rather than one more pass over the row after the last
            s = next((k for k in range(ready_after(n), len(stages)) if stages[k].space == tuple(z.shape)), None)
            if s is None:
                s = new_stage(z.shape)
            if stages[s].space is None:
                stages[s].space = tuple(z.shape)
            zv = ref(z, z, s) if z.id in members else Load(operand(z), tuple(range(z.type.rank)), z.dtype)
            value = Call(Scalar.SELECT, (is_label(n, s), zv, Const(0.0, n.dtype)), n.dtype)
            last = z.type.rank - 1
            index = _result_index((last,), True, z.type.rank, z.shape, stages[s].space, n)
            r = Reduce(step_name[n.id], ops.sum.name, value, (last,), index, tuple(n.shape), n.dtype, n.dtype, n)
            stages[s].steps.append(r)
            reduce_stage[n.id] = s
            home[n.id] = s
            store_of(n, s, Reduced(r.name, tuple(range(n.type.rank)), n.dtype), in_after=True)
            continue
        red = _reduction(n) if n.op.kind is Kind.REDUCE else None
        if n.id in sink_ids or red is not None:
            x = n.inputs[0]
            axes = n.attr("axes")
            keep = n.attr("keepdims")
            at = ready_after(n)
            if _row_level(x.shape) and (x.id in members or not x.is_literal):
                # over size-1 axes only (and the rows, for a sink): one value per row
                s = last_fits(x.shape, at, exact=False)
                if s is None:
                    s = new_stage(None)
                value = ref(x, x if x.id in members else n, s) if x.id in members else \
                    load(x, tuple(0 if a == 0 else None for a in range(x.type.rank)))
                if n.id in sink_ids:
                    index = _result_index(axes, keep, x.type.rank, x.shape, stages[s].space or x.shape, n)
                    sk = Sink(step_name[n.id], red, value, index, tuple(n.shape), n.dtype, _acc_dtype(red, n.dtype),
                              n.op.loop.combine.value, n, row_level=True)
                    stages[s].row_steps.append(sk)
                    prog_sinks.append(sk)
                else:
                    row_level.add(n.id)
                    home[n.id] = s
                    e = value if value.dtype == n.dtype else Call(Scalar.CAST, (value,), n.dtype)
                    stages[s].row_steps.append(Step(step_name[n.id], e, n.dtype, n))
                    store_of(n, s, Ref(step_name[n.id], n.dtype))
                continue
            s = last_fits(x.shape, at, exact=True)
            if s is None:
                s = new_stage(x.shape)
            if stages[s].space is None:
                stages[s].space = tuple(x.shape)
            value = ref(x, x, s) if x.id in members else load(x, tuple(range(x.type.rank)))
            index = _result_index(axes, keep, x.type.rank, x.shape, stages[s].space, n)
            if n.id in sink_ids:
                sk = Sink(step_name[n.id], red, value, index, tuple(n.shape), n.dtype, _acc_dtype(red, n.dtype),
                          n.op.loop.combine.value, n)
                stages[s].steps.append(sk)
                prog_sinks.append(sk)
            else:
                r = Reduce(step_name[n.id], red, value, tuple(a for a in axes), index, tuple(n.shape), n.dtype,
                           _acc_dtype(red, n.dtype), n)
                stages[s].steps.append(r)
                reduce_stage[n.id] = s
                home[n.id] = s
                store_of(n, s, Reduced(r.name, tuple(range(n.type.rank)), n.dtype), in_after=True)
            continue
        # an elementwise member
        at = ready_after(n)
        if _row_level(n.shape):
            s = last_fits(n.shape, at, exact=False) if stages else None
            if s is None:
                s = new_stage(None)
            row_level.add(n.id)
            home[n.id] = s
            args = tuple(ref(i, n, s) for i in n.inputs)
            stages[s].row_steps.append(Step(step_name[n.id], expr_of(n, s, args), n.dtype, n, args=args))
            store_of(n, s, Ref(step_name[n.id], n.dtype))
            continue
        s = last_fits(n.shape, at, exact=False)
        if s is None and stages and len(stages) - 1 >= at and not stages[-1].reduces and stages[-1].space is not None \
                and _fits(stages[-1].space, n.shape):
            s = len(stages) - 1  # widen the stage: its steps broadcast along the new axes
            stages[s].space = tuple(n.shape)
        if s is None:
            s = new_stage(n.shape)
        if stages[s].space is None:
            stages[s].space = tuple(n.shape)
        home[n.id] = s
        if label_op(n):  # (sub_label)
            stages[s].steps.append(Step(step_name[n.id], sub_label_expr(n, s), n.dtype, n))
        else:
            args = tuple(ref(i, n, s) for i in n.inputs)
            stages[s].steps.append(Step(step_name[n.id], expr_of(n, s, args), n.dtype, n, args=args))
        computed[s].add(n.id)
        store_of(n, s, Ref(step_name[n.id], n.dtype))
    targets, spreads = [], []
    whole_base: dict[int, ScatterInto] = {}  # (see_through: one parameter per base; its part, sign: the first's)
    added: dict[int, set] = {}  # stage -> (base id, offset) of the Scatters placed there
    for part, base, items, sign in k.scatters:
        shift = _items_offset(base, tuple(items)) if see_through else None
        if shift is not None:
            for d in shift:
                size_of(d)
            t = whole_base.get(base.id)
            if t is None:
                mine = outputs.get(base.id)
                t = whole_base[base.id] = ScatterInto(mine.name if mine else names.fresh((hint(base) or "g").lstrip("_")),
                                                      part, base, (), sign, whole=True,
                                                      output=mine.name if mine else None)
                targets.append(t)
        else:
            shift = ()
            t = ScatterInto(names.fresh((hint(base) or "g").lstrip("_") + "_at"), part, base, tuple(items), sign)
            targets.append(t)
        if items and items[0][1:3] != (None, None):  # (its rows shifted: fused/plan.py's Kernel.serial)
            spread = dim_sub(base.shape[0], k.rows)
            if spread not in spreads:
                spreads.append(size_of(spread))
        index = tuple(a if (a == 0 or part.shape[a] != 1) else None for a in range(part.type.rank))
        s = home.get(part.id)
        # where the part is made, unless that stage broadcasts it (it would be added once per point
        # of the axes it lacks), the base is a member stored there or later (stored over what is
        # added), or the stage adds into the base at another offset (LLVM then cannot tell the two
        # apart and leaves the loop scalar: W13's row differences, g[j0] -= d and g[j0 + 1] += d in
        # one loop, 10 ms on one thread; in two, 7 ms)
        inner = (base.id, shift)
        if (s is not None and part.id not in reduce_stage and (part.id in row_level or stages[s].space == tuple(part.shape))
                and (base.id not in members or (base.id in home and home[base.id] < s))
                and all(other[0] != base.id or other == inner for other in added.get(s, ()))):
            added.setdefault(s, set()).add(inner)
            step = Scatter(t.name, Ref(step_name[part.id], part.dtype), index, sign, part, shift)
            (stages[s].row_steps if part.id in row_level else stages[s].steps).append(step)
            continue
        s = new_stage(None if _row_level(part.shape) else part.shape)
        added[s] = {inner}
        step = Scatter(t.name, ref(part, part, s), index, sign, part, shift)
        (stages[s].row_steps if _row_level(part.shape) else stages[s].steps).append(step)
    for st in stages:
        if st.space is None:
            st.space = (k.rows,)
    places = sorted({place(n) for n in k.nodes if n.span})
    prog = Program(k.index, k.rows, list(operands.values()), list(outputs.values()), prog_sinks, sizes, stages, places,
                   targets, spreads)
    for i, o in reusable:
        if i.id in operands and o.id in outputs and outputs[o.id].accumulate is None:
            overwrite(prog, operands[i.id].name, outputs[o.id].name)
    return prog


def _items_offset(base: Node, items: tuple) -> tuple | None:
    """Per axis of base, where base[items] starts (an int or Dim), when items are slices of step
    1 that keep every axis (the view is base at that offset); else None."""
    if len(items) > base.type.rank or any(it[0] != "s" or it[3] != 1 for it in items):
        return None
    out = []
    for a, d in enumerate(base.shape):
        start = items[a][1] if a < len(items) else None
        if start is None:
            out.append(0)
        elif isinstance(start, int) and start < 0:
            # (as Python clamps it: x[-5:] of 3 starts at 0; a symbolic size is checked to be >= 5)
            out.append(max(0, d + start) if isinstance(d, int) else dim_add(d, start))
        else:
            out.append(start)
    return tuple(out)


def _slice_offset(i: Node) -> tuple | None:
    """_items_offset of a slice node i that slices a trailing axis (x[:, 1:], x[1:, :-2]; not
    x[1:], as contiguous as its array), or None."""
    if i.op is not ops.index or i.is_leaf or i.type.rank < 2:
        return None
    items = tuple(i.attr("items"))
    shift = _items_offset(i.inputs[0], items)
    if shift is None or all(it[1:3] == (None, None) for it in items[1:]):
        return None
    return shift


def _loads(e, operand: str) -> list:
    """The Loads of operand in an expression."""
    if isinstance(e, Load):
        return [e] if e.operand == operand else []
    out = []
    for sub in (getattr(e, "a", None), getattr(e, "b", None), *getattr(e, "args", ())):
        if sub is not None:
            out += _loads(sub, operand)
    return out


def overwrite(prog: Program, operand: str, output: str) -> bool:
    """Let output be written into operand's array (Output.reuses; the operand is dead after the
    kernel: plan.reusable_inputs) when that is safe point by point: the operand is read only at
    the point the output is stored (same index, in stages whose space is the output's shape, so
    no point is stored twice), and nowhere after the store. A renderer then writes both as one
    array: a load and a store at the same address, which a compiler vectorises (two arrays that
    may overlap it does not)."""
    o = next(x for x in prog.outputs if x.name == output)
    index, stored = None, False  # the one index the operand is read at and the output stored at
    for st in prog.stages:
        at_points = tuple(st.space) == o.shape
        for part, steps in ((0, st.row_steps), (1, st.steps), (2, st.after)):
            for s in steps:
                values = [v for v in (getattr(s, "expr", None), getattr(s, "value", None)) if v is not None]
                loads = [ld for v in values + list(getattr(s, "args", ())) for ld in _loads(v, operand)]
                if loads and (stored or not at_points or part != 1 or any(ld.offset for ld in loads)):
                    return False
                indices = [ld.index for ld in loads]
                if isinstance(s, Store) and s.output == output:
                    if stored or part != 1 or not at_points:
                        return False
                    stored = True
                    indices.append(s.index)
                for x in indices:
                    if index is None:
                        index = x
                    elif x != index:
                        return False
    if not stored:
        return False
    prog.outputs[prog.outputs.index(o)] = Output(o.name, o.node, o.dtype, o.shape, o.accumulate, reuses=operand)
    return True


def _result_index(axes, keep: bool, rank: int, x_shape, space, n: Node) -> tuple:
    """Per axis of a reduction's result: the stage axis it runs along (None: reduced or size 1)."""
    out = []
    for a in range(rank):
        if a in axes:
            if keep:
                out.append(None)
            continue
        out.append(a if (a == 0 or x_shape[a] != 1) else None)
    return tuple(out)
