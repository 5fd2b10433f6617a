"""The primitive record and the registry: THE table of tapeless operations.

One frozen record per primitive holds every fact about it, side by side. A node of the IR
points at its record (`node.op`), so every stage asks the record, never an op name:

    facet         signature / type                       what it says
    -----         ----------------                       ------------
    infer         (types, attrs) -> TensorType           shape and dtype rule; UserError(arg=) names
                                                         the operand at fault
    coerce        (args, attrs) -> args                  operand dtype coercion before `infer`
    vjp           (ctx, node, ct, needs) -> [ct | None]  reverse rule: one cotangent per input
    jvp           (ctx, node, tangents) -> t | None      forward rule: the output's tangent
    sympy         (ctx, args, node) -> object array      the meaning over SymPy scalars, at the sizes
                                                         in ctx (written from the mathematics, never
                                                         from the VJP: the SymPy check compares two
                                                         independent things)
    emit          (ctx, args, node) -> Expr              NumPy emission over the alias `xp`; CuPy
                                                         reads the same text
    helpers       (Helper, ...)                          helper functions `emit` calls, with their source
    loop          Loop | None                            how a fused loop computes it (ufunc, reducer)
    scalar        str | None                             the elementwise scalar expression over {0}, {1},
                                                         ... in C-like form (primitives/common.py,
                                                         SCALAR_FUNCTIONS)
    fold          python scalars -> scalar               evaluation of literals at compile time
    view          bool | node -> bool                    the result may share memory with an input
    relabels      bool                                   a view showing each element of its input once,
                                                         writable where the input is (reshape,
                                                         transpose): a fused loop may write its output
                                                         over it when the input is a temporary
    allocates     bool                                   makes a fresh array (constructors, scatters)
    writes_shape  bool                                   its code spells its result's shape
    out_arg       bool | node -> bool                    its emit, given one more argument (an array of the
                                                         result's shape and dtype, dead), writes the result there
    cost          Cost                                   free, cheap, costly or a contraction
    quiet         bool                                   may meet inf/nan on the way to a right result
    requires      node -> [(dim, what)]                  run-time conditions on symbolic sizes
    special       (Special, ...)                         points the SymPy check samples on purpose:
                                                         where the op is singular or its derivative
                                                         is a convention (0 ** b, ties, clip's bounds)
    body          node -> [Node]                         the node as IR of other primitives (a call:
                                                         the callee inlined); a directive expands it
                                                         before differentiating
    axis_map      node -> per input, per axis: int|None  where each input axis runs in the result: an
                                                         output axis (element j feeds element j only),
                                                         a negative label (summed or reduced away; one
                                                         label in two inputs is one contracted index),
                                                         or None (its elements meet, move or are
                                                         picked: softmax's axis, a slice, a cumsum);
                                                         elementwise ops have it by broadcasting.
                                                         What autodiff/batch.py reads

`rule_shape` says which of the named shapes (primitives/rule_shapes.py) built the
derivative rules: unary, binary, linear, bilinear, nondifferentiable, constructor, leaf, or
custom. `differentiable=False` marks results that carry no derivative (comparisons, integer
results); `detaches` marks `stop_gradient`, a float value every derivative treats as a
constant. tests/test_primitive_table.py walks the registry and fails for a missing facet.

Adding a primitive is one record in one of the primitives/ files (docs/architecture.md,
"Adding a primitive", works one through), for example cbrt's (simplified; the real one is in
primitives/math_functions.py)

    register(unary("cbrt", xp_call("cbrt"), lambda x, y: B.div(_c(1, x), B.mul(_c(3, x), B.mul(y, y))),
                   lambda x: _sympy().cbrt(x), np.cbrt, domain="positive", scalar="cbrt({0})"))

The registry is filled when primitives/catalog.py is imported (the pipeline does that once).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

# Python operator precedences, for parenthesising emitted expressions.
PREC_ATOM = 100
PREC_POSTFIX = 16  # call, subscript, attribute
PREC_POW = 14
PREC_UNARY = 13
PREC_MUL = 12
PREC_ADD = 11
PREC_CMP = 6
PREC_LOWEST = 0


@dataclass(frozen=True)
class Expr:
    """An emitted Python expression and its precedence."""

    text: str
    prec: int = PREC_ATOM

    def at(self, prec: int) -> str:
        """The text, parenthesised if it binds looser than `prec`."""
        return self.text if self.prec >= prec else f"({self.text})"

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Helper:
    """A function a generated module defines when its code calls it: `_<name>`, written over `xp`.
    `uses` names the helpers it calls; `variants` are (backend name, source) pairs replacing the
    source on that backend; `imports` are the standard-library imports it needs."""

    name: str
    source: str
    uses: tuple[str, ...] = ()
    variants: tuple[tuple[str, str], ...] = ()
    imports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Loop:
    """How the NumPy backend's fused loops compute a primitive, block by block.

    ufunc:    xp.NAME(*inputs, *extra, out=buffer) computes it (relu: maximum with "0")
    row:      give that ufunc a row of its scalar operand, not the scalar itself (NumPy 2.4
              on AVX2: maximum(x, 0) on 128K float32 elements 65-95 us, against a (1, 256)
              row of zeros 32-36 us; add or multiply show no difference)
    reducer:  a reduction that is xp.NAME.reduce (fused loops total a block with it)
    combine:  a reduction over the rows a loop may end with: how the threads' partial results
              are combined (primitives/common.py, Combine)
    rowwise:  computed along the axis in attribute `axis` (softmax): a loop over blocks of
              rows may run it when that axis is not the first
    into:     its emit, given the block's buffer as one more argument, writes the result there
              (sub_label: a scatter over p's block, in place where p dies)
    row_index: over 1-D labels (input 1), its emit is given last an index of the block's rows
              (an arange made once per loop call, sliced per block) and indexes with it plainly
              (pick_label, sub_label: 4-row blocks, take_along_axis 3.5 us against 0.8 us)
    images:   computed image by image from the windows of one input (Images): a loop over blocks
              of rows may run it on a block's images; with combine, a sum over the images
              (conv_grad_w) that ends the loop as a sink (NumPy backend only)
    """

    ufunc: str | None = None
    extra: tuple[str, ...] = ()
    row: bool = False
    reducer: str | None = None
    combine: enum.Enum | None = None
    rowwise: bool = False
    into: bool = False
    row_index: bool = False
    images: "Images | None" = None


@dataclass(frozen=True)
class Images:
    """How a fused loop runs a convolution-like op (Loop.images) on a block of images: the block's
    columns (im2col of input `x`'s windows) are copied once, into a buffer made once per loop
    call, and every op of the loop over the same windows multiplies them (the forward GEMM and
    the gradient of w share one copy, as the hand-written convolution does); so the activations
    of the whole batch and their cotangent need never exist, only a block of them.

    aligned:  per input, whether its axis 0 are the images (conv: x yes, w no)
    x:        the input whose windows are the columns
    key:      node -> what makes two ops' columns the same (with x): the window attributes
    columns:  (ctx, x text, rows text, node) -> the text of a function copying the columns of
              images [i, j) (at most rows of them) into its buffer and returning them
    emit:     (ctx, args, out text or None, node) -> the op on a block's images (args: the block
              values of the inputs, the columns in place of x; out: the buffer a member writes)
    column_bytes: node -> the bytes of one image's columns (a block's size counts them)
    """

    aligned: tuple[bool, ...]
    x: int
    key: Callable
    columns: Callable
    emit: Callable
    column_bytes: Callable


class Kind(enum.Enum):
    """What family a primitive belongs to. A record is made with the name ("elementwise") and
    holds the member; a stage compares members (op.kind is Kind.REDUCE), never strings."""

    ELEMENTWISE = "elementwise"
    REDUCE = "reduce"
    LINALG = "linalg"
    SHAPE = "shape"
    NN = "nn"  # the losses and softmaxes with their own rules
    SCAN = "scan"  # running sums along an axis
    ORDER = "order"  # sorting: the indices that order an axis
    LEAF = "leaf"  # param
    LITERAL = "literal"  # const, dim
    CONSTRUCTOR = "constructor"  # full, eye: made from attributes alone
    MISC = "misc"
    SUBGRAPH = "subgraph"  # its meaning is a graph of other primitives (a call kept as a call)

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            raise TypeError(f"a Kind compared with the string {other!r}: compare members (Kind.X)")
        return self is other

    __hash__ = enum.Enum.__hash__


class Cost(enum.Enum):
    """What one element costs: decides block sizes of fused loops and what -O2 recomputes."""

    FREE = "free"  # a view or a relabelling: no work per element
    CHEAP = "cheap"  # a few cycles per element (add, compare, select)
    COSTLY = "costly"  # tens of cycles per element (exp, log, tanh): blocks stay L2-sized
    CONTRACTION = "contraction"  # a BLAS product or an einsum


@dataclass(frozen=True)
class RuleContext:
    """What a derivative rule may call besides the builder: the sweeps themselves, for a
    primitive that carries a sub-function (a loop body, a scan): ctx.pullback(outputs, cts,
    wrt) and ctx.pushforward(outputs, wrt, tangents) (autodiff/vjp.py, autodiff/jvp.py)."""

    pullback: Callable[..., list]
    pushforward: Callable[..., list]
    # split(outputs, params, grads, cts): what a backward pass reads of a forward one
    # (autodiff/residuals.py); a loop's VJP stacks those values
    split: Callable[..., Any] | None = None
    # a rule's values that depend on the primal node alone (a unary op's derivative), by node id:
    # made once, though a grad's two reverse sweeps (and an hvp's sweeps) each ask
    primal_values: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SymContext:
    """What a SymPy meaning may read: the concrete sizes of the size symbols, and the
    evaluator itself (evaluate(outputs, {param id: value}) -> values), for a primitive whose
    meaning is a graph (a call)."""

    sizes: dict
    evaluate: Callable[..., list] | None = None

    def dim(self, d) -> int:
        from .types import dim_subst

        return int(dim_subst(d, self.sizes))

    def shape(self, shape) -> tuple[int, ...]:
        return tuple(self.dim(d) for d in shape)


@dataclass(frozen=True)
class Special:
    """A point where a primitive is singular or its derivative is a convention (a tie of
    maximum, x ** 0 at 0, clip at its bounds): `tapeless check` evaluates the derivatives there
    too (tools/special_points.py), wherever an operand is a parameter (up to reshapes,
    broadcasts, casts and a * x + b), so a NaN or a convention broken there is caught.

    values:      (operand, value) pairs: the operand takes the value (at every other element)
    ties:        (operand, operand) pairs: the two are equal (at every other element)
    slice_ties:  a reduction over attribute `axes`: "largest" or "smallest": in each reduced
                 slice an entry equals the slice's largest (smallest) entry
    slice_zeros: a reduction: this many entries of each reduced slice are 0
    """

    label: str
    values: tuple[tuple[int, float], ...] = ()
    ties: tuple[tuple[int, int], ...] = ()
    slice_ties: str = ""
    slice_zeros: int = 0


RULE_SHAPES = ("unary", "binary", "linear", "bilinear", "nondifferentiable", "constructor", "leaf", "custom")


@dataclass(frozen=True, eq=False)
class Primitive:
    name: str
    kind: Kind  # given as its name ("elementwise"); held as the member
    infer: Callable[..., Any]
    emit: Callable[..., Expr] | None = None
    vjp: Callable[..., Any] | None = None
    jvp: Callable[..., Any] | None = None
    sympy: Callable[..., Any] | None = None
    coerce: Callable[..., Any] | None = None
    fold: Callable[..., Any] | None = None
    # exact integer evaluation (Python ints) to catch overflow in folded literals; None: `fold`
    # on object arrays
    fold_exact: Callable[..., Any] | None = None
    rule_shape: str = "custom"
    sympy_note: str = ""  # why there is no SymPy meaning (sympy None), and how it is checked instead
    differentiable: bool = True
    detaches: bool = False
    elementwise: bool = False
    helpers: tuple[Helper, ...] = ()
    loop: Loop | None = None
    scalar: str | None = None
    view: bool | Callable[[Any], bool] = False
    relabels: bool = False
    allocates: bool = False
    writes_shape: bool = False
    out_arg: bool | Callable[[Any], bool] = False
    cost: Cost = Cost.CHEAP
    quiet: bool = False
    requires: Callable | None = None
    body: Callable | None = None
    # a node of several results is a group of nodes equal but for their `out` attribute (a
    # loop, one node per carry): the reverse sweep hands the group's cotangents to
    # group_vjp(ctx, members by out, cotangents by out, needs) at once; `vjp` is not used
    group_vjp: Callable | None = None
    # a record written as statements, not an expression (a loop): write(w, node, members by out),
    # w the emitter's writer (w.statement, w.arg, w.carries, w.bind, w.ctx); `emit` is not used
    write: Callable | None = None
    doc: str = ""
    # example applications for the per-primitive SymPy proofs: (input types, attrs, {input: domain})
    examples: tuple = ()
    special: tuple[Special, ...] = ()
    axis_map: Callable | None = None

    def __post_init__(self) -> None:
        if isinstance(self.kind, str):
            object.__setattr__(self, "kind", Kind(self.kind))
        if self.rule_shape not in RULE_SHAPES:
            raise ValueError(f"primitive {self.name}: unknown rule shape {self.rule_shape!r}")
        if self.loop is None and isinstance(self.fold, np.ufunc) and self.elementwise:
            object.__setattr__(self, "loop", Loop(ufunc=self.fold.__name__))
        if self.axis_map is None and self.elementwise:
            object.__setattr__(self, "axis_map", broadcast_axes)

    # identity is equality: a node's op is the record itself
    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            raise TypeError(f"a primitive compared with the string {other!r}: compare records "
                            f"(node.op is ops.{other}) or ask a facet")
        return self is other

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__

    def is_view(self, node) -> bool:
        """Whether node's result (an application of this primitive) may share memory with an input."""
        return bool(self.view(node)) if callable(self.view) else self.view

    def writes_into(self, node) -> bool:
        """Whether node's emit may be given an array to write its result into (out_arg)."""
        return bool(self.out_arg(node)) if callable(self.out_arg) else self.out_arg

    @property
    def ufunc(self) -> tuple | None:
        """(name, extra arguments) when a fused loop computes it as one ufunc call."""
        return (self.loop.ufunc, self.loop.extra) if self.loop is not None and self.loop.ufunc else None

    @property
    def reducer(self) -> str | None:
        return self.loop.reducer if self.loop is not None else None

    def facets(self) -> dict[str, bool]:
        """Which facets the record has, for the registry test (a rule missing is not the same
        as `not differentiable`)."""
        # (a subgraph has no examples of its own: its meaning is made of checked records)
        leafish = self.kind in (Kind.LEAF, Kind.LITERAL, Kind.CONSTRUCTOR, Kind.SUBGRAPH)
        return {
            "infer": self.infer is not None,
            "emit": self.emit is not None or self.write is not None,
            "vjp": self.vjp is not None or self.group_vjp is not None or not self.differentiable,
            "jvp": self.jvp is not None or not self.differentiable,
            "sympy": self.sympy is not None or bool(self.sympy_note),
            "scalar": self.scalar is not None or not self.elementwise,
            "examples": bool(self.examples) or not self.differentiable or leafish,
        }


def broadcast_axes(node) -> tuple:
    """An elementwise op's axis_map: NumPy broadcasting aligns every input's axes from the right."""
    rank = node.type.rank
    return tuple(tuple(range(rank - i.type.rank, rank)) for i in node.inputs)


REGISTRY: dict[str, Primitive] = {}


def register(prim: Primitive) -> Primitive:
    if prim.name in REGISTRY:
        raise ValueError(f"primitive {prim.name!r} registered twice")
    REGISTRY[prim.name] = prim
    return prim


def get(name: str) -> Primitive:
    try:
        return REGISTRY[name]
    except KeyError:
        if not REGISTRY:
            raise LookupError(f"primitive {name!r}: no rules are loaded; import "
                              "tapeless.compiler.primitives.catalog first (the pipeline does)") from None
        raise LookupError(f"no primitive named {name!r}") from None


class _Ops:
    """`ops.mul` is the record of `mul`: stages outside primitives/ name a primitive this way,
    never by a string (a typo is an AttributeError, not a comparison that is silently False)."""

    def __getattr__(self, name: str) -> Primitive:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return REGISTRY[name]
        except KeyError:
            raise AttributeError(f"no primitive named {name!r}"
                                 + ("" if REGISTRY else " (no rules are loaded)")) from None


ops = _Ops()
