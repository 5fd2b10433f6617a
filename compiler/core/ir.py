"""The typed IR: immutable nodes in a graph, functions, modules.

One node type: `op` (the primitive's record, core/primitive.py), `inputs`, `attrs`
(static parameters such as `axis`), `type` (dtype + symbolic shape) and `span` (where in
the `.tl` file it came from). Nodes are immutable: assigning an attribute raises.

Nodes are built through `nodes.apply`, which runs the primitive's type rule, then
`make_node`, which interns the result: two structurally equal nodes are the same object, so
common subexpressions are shared by construction. (Literals and constructors re-made in
another dtype go to `make_node` directly: they are made so, never cast.)

Names are data beside the graph, not on nodes: the stages record *hints* (the source
variable a value was bound to, `d_x` for a gradient) with `hint(node, name)`; the first
hint a node gets stays. A Module carries its hints (`module.hints`), and two namers turn them into
identifiers: core/ir_text.py's IrNames for the IR text and `tapeless graph`, and the
generated module's (codegen/names.py), which also keeps Python's keywords and the module's
own globals out.

Leaf ops: `param` (a function parameter), `const` (a scalar literal) and `dim` (the
value of a size symbol); `const` and `dim` are the *literals*, written inline. Every
op is a record in the table (`compiler/primitives/`).
"""
from __future__ import annotations

import contextvars
import itertools
import operator
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from .derivative import Derivative
from .source import SourceFile, Span
from .types import TensorType

_ids = itertools.count()
_ID = operator.attrgetter("id")


class Node:
    __slots__ = ("op", "inputs", "attrs", "type", "span", "id", "__weakref__")

    def __init__(self, op, inputs: tuple["Node", ...], attrs: tuple[tuple[str, Any], ...],
                 type: TensorType, span: Span | None):
        _SET_OP(self, op)  # (the slots' own setters: __setattr__ refuses, and this is the hot path)
        _SET_INPUTS(self, inputs)
        _SET_ATTRS(self, attrs)
        _SET_TYPE(self, type)
        _SET_SPAN(self, span)
        _SET_ID(self, next(_ids))

    def __setattr__(self, key, value):
        raise AttributeError(f"IR nodes are immutable (setting `{key}`); names are hints: ir.hint(node, name)")

    def attr(self, key: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    @property
    def attr_dict(self) -> dict[str, Any]:
        return dict(self.attrs)

    @property
    def shape(self):
        return self.type.shape

    # the leaves, by their names (the one place outside primitives/ that knows them)
    @property
    def is_param(self) -> bool:
        return self.op.name == "param"

    @property
    def is_const(self) -> bool:
        return self.op.name == "const"

    @property
    def is_dim(self) -> bool:
        return self.op.name == "dim"

    @property
    def is_literal(self) -> bool:
        """A scalar literal or a size symbol's value: written inline where it is used."""
        return self.op.name in ("const", "dim")

    @property
    def is_leaf(self) -> bool:
        return self.op.name in ("param", "const", "dim")

    @property
    def dtype(self):
        return self.type.dtype

    def __repr__(self) -> str:
        label = f" {self.attr('name')}" if self.is_param else ""
        return f"<{self.op}{label} : {self.type} #{self.id}>"


_SET_OP, _SET_INPUTS, _SET_ATTRS, _SET_TYPE, _SET_SPAN, _SET_ID = (
    getattr(Node, slot).__set__ for slot in ("op", "inputs", "attrs", "type", "span", "id"))


def freeze_attrs(attrs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, _freeze(v)) for k, v in attrs.items() if v is not None))


def _freeze(v):
    # (a function of its own: a recursive closure made per call is a reference cycle per node)
    return tuple(_freeze(x) for x in v) if isinstance(v, list) else v


# ---- interning -----------------------------------------------------------------------
@dataclass
class Graph:
    """The intern table of one compilation (equal (op, inputs, attrs, type) give one node) and
    the name hints given so far (node id -> name; the first one stays)."""

    table: dict = field(default_factory=dict)
    hints: dict = field(default_factory=dict)


_graph: contextvars.ContextVar[Graph | None] = contextvars.ContextVar("tapeless_graph", default=None)
_span: contextvars.ContextVar[Span | None] = contextvars.ContextVar("tapeless_span", default=None)


class graph_scope:
    """`with graph_scope() as g: ...` gives the code inside one intern table, `g.graph`: a new
    one, seeded with `hints` (a pass rebuilding a module keeps its names), or `graph` itself
    (a later stage continuing an earlier one's table)."""

    def __init__(self, hints: Mapping[int, str] | None = None, graph: Graph | None = None):
        self.graph = graph if graph is not None else Graph(hints=dict(hints or {}))

    def __enter__(self):
        self._token = _graph.set(self.graph)
        return self

    def __exit__(self, *exc):
        _graph.reset(self._token)


class span_scope:
    """Nodes made inside take this span unless given one (derivative code points at its primal)."""

    __slots__ = ("span", "_token")

    def __init__(self, span: Span | None):
        self.span = span

    def __enter__(self):
        self._token = _span.set(self.span)

    def __exit__(self, *exc):
        _span.reset(self._token)


def current_span() -> Span | None:
    return _span.get()


# span_scope without its object and two calls, for a loop that sets the span once per node
# (passes/common.map_nodes): `token = set_span(span)`, then `reset_span(token)`
set_span, reset_span = _span.set, _span.reset


def make_node(op, inputs: tuple[Node, ...], attrs: tuple, type: TensorType,
              span: Span | None = None, name: str | None = None) -> Node:
    """The node (op, inputs, attrs, type), interned: an equal one made before is returned.
    Parameters are never interned (two parameters of one type are two values). `name` is a
    hint for a node made here (an interned one keeps what it had)."""
    span = span or _span.get()
    g = _graph.get()
    if g is None or op.name == "param":
        return Node(op, inputs, attrs, type, span)
    key = (op, tuple(map(_ID, inputs)), attrs or (), type)  # (map over attrgetter: no comprehension frame)
    try:
        node = g.table.get(key)
    except TypeError:  # pragma: no cover - attrs are frozen by freeze_attrs
        key = (op, key[1], repr(attrs), type)
        node = g.table.get(key)
    if node is None:
        node = g.table[key] = Node(op, inputs, attrs, type, span)
        if name is not None and not node.is_leaf:
            g.hints.setdefault(node.id, name)
    return node


# ---- names -------------------------------------------------------------------------------
def hint(node: Node, name: str) -> None:
    """Record that `node` is called `name` (a source variable, `d_x`, ...), unless it already has
    a name; literals and parameters are named otherwise."""
    g = _graph.get()
    if g is not None and not node.is_leaf:
        g.hints.setdefault(node.id, name)


def keep_name(old: Node, new: Node) -> None:
    """`new` (old made again) takes old's name unless it has one: name_of then hint, with one
    look-up of the graph (every node a pass or a substitution rebuilds asks)."""
    g = _graph.get()
    if g is not None and new is not old and not new.is_leaf:
        name = old.attr("name") if old.is_param else g.hints.get(old.id)
        if name is not None:
            g.hints.setdefault(new.id, name)


def rename(node: Node, name: str) -> None:
    """Name `node` even if it had a name (a role that says more: hv_w over t_d_w)."""
    g = _graph.get()
    if g is not None and not node.is_leaf:
        g.hints[node.id] = name


def group_key(node: Node) -> tuple:
    """What the nodes of one several-result group share (a loop's carries, primitive.group_vjp):
    op, inputs and attributes, all but `out`."""
    return (node.op, tuple(i.id for i in node.inputs), tuple((k, v) for k, v in node.attrs if k != "out"))


def name_of(node: Node) -> str | None:
    """The node's name so far: a parameter's own, else its first hint in this graph."""
    if node.is_param:
        return node.attr("name")
    g = _graph.get()
    return None if g is None else g.hints.get(node.id)


def current_hints() -> dict[int, str]:
    """The hints of the current graph (what a stage hands to the Module it makes)."""
    g = _graph.get()
    return dict(g.hints) if g is not None else {}


# ---- functions and modules -------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Function:
    """A function of the IR: parameters (`param` nodes) to outputs.

    A function of the source has no `derivative`; a function a directive made carries its
    typed record (core/derivative.py): the directive, the part (NAME, NAME_fwd, NAME_bwd),
    what it differentiates and what each parameter and output holds. `multi`: a fn that
    returns a tuple.
    """

    name: str
    params: tuple[Node, ...]
    outputs: tuple[Node, ...]
    span: Span | None
    multi: bool = False
    derivative: Derivative | None = None

    @property
    def kind(self) -> str:
        """fn, or the derivative's kind (grad, vjp, jvp, hvp, fwd, bwd): the IR text's first word."""
        return "fn" if self.derivative is None else self.derivative.kind

    @property
    def param_names(self) -> list[str]:
        return [p.attr("name") for p in self.params]


@dataclass(frozen=True, eq=False)
class Module:
    source: SourceFile
    functions: tuple[Function, ...]
    hints: Mapping[int, str] = field(default_factory=dict)  # node id -> name (see `hint`)
    # the derivative functions the file declares that this module does not hold yet (the
    # typed stage's module: they come with the adjoint stage)
    pending: tuple[str, ...] = ()
    # fn name -> {size symbol: whether its value is a sum or a mean over that symbol's axis of
    # per-example terms} (autodiff/batch.py; `__tapeless__`'s "batch", read by dask_grad)
    batch: Mapping[str, Mapping[str, tuple]] = field(default_factory=dict)

    def name_of(self, node: Node) -> str | None:
        return node.attr("name") if node.is_param else self.hints.get(node.id)

    def function(self, name: str) -> Function:
        for f in self.functions:
            if f.name == name:
                return f
        raise KeyError(name)

    def pair(self, fn: Function) -> tuple[Function, Function] | None:
        """(NAME_fwd, NAME_bwd) of a grad or vjp function or of either part; None for others."""
        d = fn.derivative
        if d is None or d.pair is None:
            return None
        return self.function(d.pair[0]), self.function(d.pair[1])


# ---- graph walks -------------------------------------------------------------------------
def topo_order(outputs: Iterable[Node]) -> list[Node]:
    """Every node the outputs depend on, inputs before users, in a deterministic order."""
    outputs = tuple(outputs)
    hit = _ORDERS.get(outputs)
    if hit is None:
        hit = _ORDERS[outputs] = _topo_order(outputs)
        while len(_ORDERS) > 16:  # nodes are immutable, so an order stays right; the recent few are kept
            del _ORDERS[next(iter(_ORDERS))]
    return list(hit)


_ORDERS: dict[tuple[Node, ...], list[Node]] = {}


def _topo_order(outputs: tuple[Node, ...]) -> list[Node]:
    # (nodes themselves in `seen`: their identity hash is cheaper than reading .id; the
    # methods bound once: this walk runs over every node several times per stage)
    seen: set[Node] = set()
    mark = seen.add
    order: list[Node] = []
    emit = order.append
    for root in outputs:
        if root in seen:
            continue
        mark(root)
        stack: list[tuple[Node, Iterator[Node]]] = [(root, iter(root.inputs))]
        push, pop = stack.append, stack.pop
        while stack:
            node, it = stack[-1]
            for child in it:
                if child not in seen:
                    mark(child)
                    if not child.inputs:  # a leaf: it comes next, with no frame of its own
                        emit(child)
                        continue
                    push((child, iter(child.inputs)))
                    break
            else:
                pop()
                emit(node)
    return order


def use_counts(nodes: Iterable[Node], outputs: Iterable[Node] = ()) -> dict[int, int]:
    counts: dict[int, int] = {}
    for n in nodes:
        for i in n.inputs:
            counts[i.id] = counts.get(i.id, 0) + 1
    for o in outputs:
        counts[o.id] = counts.get(o.id, 0) + 1
    return counts
