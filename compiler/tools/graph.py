"""`tapeless graph`: the forward and adjoint graphs of a function as Graphviz DOT.

    view = build_view(module, "layer_grad")        # what to draw: parts, boxes, edges
    view = collapse_statements(view)               # optional: one box per source statement
    view = split_fanout(view)                      # values used everywhere: reference boxes
    text = to_dot(view)                            # deterministic DOT text
    data = render(text, "svg")                     # through Graphviz's `dot` program

`graph_text` runs these steps; `graph_command` is `tapeless graph`.

A derivative NAME (kind grad or vjp) is drawn as one graph in two clusters: the
forward part (every node the outputs of F need) and the backward part (the
rest). The forward nodes that NAME_fwd returns after F's outputs are the
residuals, drawn with a green border. A plain `fn` is drawn with the derivative
functions the file declares of it (one backward cluster each, the forward part
shared); NAME_fwd and NAME_bwd are drawn on their own. docs/graph.md has the
legend and the decisions.

Deterministic: nothing depends on node ids or object identity, only on the
order of parameters and of `topo_order`, so the same input gives the same
bytes. Safe: every piece of text from the `.tl` file or its name goes through
`dot_text`, so quotes, backslashes, `&`, `<`, `>` and control characters can
neither break the DOT nor be read as Graphviz escapes.
"""
from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field

from .. import pipeline
from ..core.derivative import Part as FnPart
from ..core.derivative import Slot
from ..core.ir import Function, Module, Node, topo_order
from ..core.ir_text import IrNames, format_value, type_text
from ..core.source import SourceFile

STAGES = ("typed", "adjoint", "optimized")
COLLAPSE = ("none", "statements")
FORMATS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png"}
RENDER_TIMEOUT = 120.0  # seconds for `dot`; a 500-node graph takes under one
WIDTH = 60  # longest label line; longer ones end in "..."
FANOUT = 8  # a value used more often is drawn once, plus a small reference box beside each use

# How each kind of box is drawn (the legend in docs/graph.md). Only long-standing
# attributes and shapes, hexadecimal colours, no HTML labels or record shapes.
STYLE = {
    "op": 'shape=box, style="rounded,filled"',  # one operation
    "statement": "shape=box, style=filled",  # the operations of one source line (--collapse statements)
    "input": "shape=invhouse, style=filled",  # a parameter
    "wrt": "shape=invhouse, style=filled",  # a parameter the derivative is taken with respect to
    "cotangent": "shape=house, style=filled",  # a cotangent or the seed: flows into a backward pass
    "residual": "shape=invhouse, style=filled",  # a parameter of NAME_bwd that NAME_fwd saved
    "size": "shape=ellipse, style=filled, fontsize=8",  # a size symbol carried as an integer
    "const": "shape=ellipse, style=filled, fontsize=8",  # a literal or size that is an output itself
    "ref": 'shape=box, style="rounded,filled,dashed", fontsize=8',  # stands for a box used everywhere
}
FILL = {"op": "#ffffff", "statement": "#ffffff", "input": "#cfe2f3", "wrt": "#ffd966", "cotangent": "#f4cccc",
        "residual": "#d9ead3", "size": "#eeeeee", "const": "#ffffff"}  # a reference: its origin's
SAVED = 'color="#38761d", penwidth=2.5'  # a residual: NAME_fwd returns it, NAME_bwd reads it
OUTPUT = "peripheries=2"
CLUSTER = {
    "forward": 'style="rounded,filled", fillcolor="#eef4fc", color="#6d9eeb"',
    "backward": 'style="rounded,filled", fillcolor="#fdf1ec", color="#e06666"',
}
EDGE = {
    ("forward", "forward"): "",
    ("forward", "backward"): ' [color="#38761d", style=dashed]',  # a forward value read backward
    ("backward", "backward"): ' [color="#a61c00", dir=back]',
    ("backward", "forward"): "",  # never: the forward part needs nothing of the backward one
}


class GraphError(Exception):
    """A user error: unknown function, bad output name, Graphviz missing or failing."""


# ---- text ------------------------------------------------------------------------------
def clean(text: str) -> str:
    """One printable line: control characters, line breaks, format characters and
    lone surrogates (undecodable file names) are shown as Python escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def clip(text: str, width: int = WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def dot_text(text: str) -> str:
    """The inside of a DOT string for `text`, shown literally by Graphviz: `\\` and `"`
    escaped for DOT, `\\` again so `\\n`, `\\N`, `\\G` stay text, `&` so `&lt;` stays text."""
    return clean(text).replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")


def dot_label(lines: list[str]) -> str:
    return '"' + "\\n".join(dot_text(line) for line in lines) + '"'


def _source_line(source: SourceFile | None, span) -> str:
    """The statement text at a span's line, without its comment."""
    if source is None or span is None or span.file != source.path:
        return ""
    line = source.line_text(span.line)
    quoted = False
    for k, c in enumerate(line):  # `#` starts a comment outside a string (einsum specs)
        if c == '"':
            quoted = not quoted
        elif c == "#" and not quoted:
            line = line[:k]
            break
    return line.strip()


def _where(span) -> str:
    return f"{os.path.basename(span.file) or span.file}:{span.line}" if span else ""


# ---- what to draw ------------------------------------------------------------------------
@dataclass
class Part:
    kind: str  # "forward" | "backward": cluster colours and edge colours
    label: str


@dataclass
class Item:
    """One box: a node, or (collapsed) the nodes of one statement."""

    role: str  # a key of STYLE
    part: int  # index into View.parts
    head: list[str]  # first label lines: binder, op and arguments, type (or statement text, ops)
    where: str = ""  # file:line
    tooltip: str = ""
    saved: list[str] = field(default_factory=list)  # "saved as NAME" lines: a residual
    outputs: list[str] = field(default_factory=list)  # "output K" lines
    nodes: list[Node] = field(default_factory=list)
    ref: str = ""  # how a reference box names it
    origin: int | None = None  # a reference box: the index of the item it stands for

    @property
    def lines(self) -> list[str]:
        return [clip(h) for h in self.head] + [clip(s) for s in self.saved] + \
            ([clip(", ".join(self.outputs))] if self.outputs else []) + ([clip(self.where)] if self.where else [])


@dataclass
class View:
    title: list[str]
    parts: list[Part]
    items: list[Item]
    edges: list[tuple[int, int]]  # item indices, input -> user, each pair once
    source: SourceFile | None = None


def find_function(module: Module, name: str, stage: str = "adjoint") -> Function:
    """The function `--fn NAME` names at `stage`, or a GraphError listing the ones there are."""
    visible = list(module.functions)
    for f in visible:
        if f.name == name:
            return f
    where = module.source.path
    if name in module.pending:
        raise GraphError(f"{where}: `{clean(name)}` is a derivative function: it exists from --stage adjoint on; "
                         f"functions at stage {stage}: {', '.join(f.name for f in visible)}")
    names = [f.name for f in visible]
    close = difflib.get_close_matches(name, names, 1)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    listing = ", ".join(names) if names else "none"
    raise GraphError(f"{where}: no function `{clean(name)}` at stage {stage}{hint} (functions: {listing})")


def build_view(module: Module, name: str, stage: str = "adjoint") -> View:
    """What `tapeless graph --fn NAME --stage STAGE` draws (module: that stage's IR)."""
    fn = find_function(module, name, stage)
    if _split(fn):
        return _Builder(module, stage).derivatives(None, [fn])
    if fn.derivative is None:
        derivs = [] if stage == "typed" else \
            [d for d in module.functions if _split(d) and d.derivative.of == fn.name]
        return _Builder(module, stage).derivatives(fn, derivs)
    return _Builder(module, stage).alone(fn)


def _split(fn: Function) -> bool:
    """A grad or vjp function (NAME, with NAME_fwd and NAME_bwd): drawn forward and backward."""
    return fn.derivative is not None and fn.derivative.part is FnPart.WHOLE and fn.derivative.pair is not None


def _n_outputs(d: Function) -> int:
    """How many of a derivative's outputs are F's (the rest are gradients)."""
    return d.derivative.n_primal_outputs


def _cotangents(d: Function) -> list[Node]:
    return [d.params[k] for k in d.derivative.slots(d.derivative.params, Slot.COTANGENT)]


class _Builder:
    def __init__(self, module: Module, stage: str):
        self.module = module
        self.stage = stage
        self.names = IrNames(module.hints)
        self.items: list[Item] = []
        self.item_of: dict[int, int] = {}

    def _item(self, n: Node, role: str, part: int, head: list[str]) -> Item:
        item = Item(role, part, head, _where(n.span), self._tooltip(n), nodes=[n], ref=self.names.ref(n))
        self.item_of[n.id] = len(self.items)
        self.items.append(item)
        return item

    def _tooltip(self, n: Node) -> str:
        text = _source_line(self.module.source, n.span)
        return f"{n.span.file}:{n.span.line}: {text}" if n.span else ""

    def _param(self, p: Node, role: str, part: int, what: str) -> Item:
        return self._item(p, role, part, [self.names.ref(p), type_text(p.type), what])

    def _op(self, n: Node, part: int) -> Item:
        if n.is_literal:  # drawn only when it is an output itself
            return self._item(n, "const", part, [self.names.ref(n)])
        args = ", ".join(self.names.ref(i) for i in n.inputs)
        attrs = ", ".join(f"{k}={format_value(v)}" for k, v in n.attrs if k != "weak")
        call = f"{n.op}({args})" + (f" {{{attrs}}}" if attrs else "")
        return self._item(n, "op", part, [f"{self.names.ref(n)} = {call}", type_text(n.type)])

    def _edges(self) -> list[tuple[int, int]]:
        edges: dict[tuple[int, int], None] = {}
        for dst, item in enumerate(self.items):
            for i in item.nodes[0].inputs:
                src = self.item_of.get(i.id)
                if src is not None:
                    edges.setdefault((src, dst))
        return list(edges)

    def _mark_outputs(self, outputs, label=lambda k: f"output {k}") -> None:
        for k, o in enumerate(outputs):
            self.items[self.item_of[o.id]].outputs.append(label(k))

    def _title(self, first: str) -> list[str]:
        return [first, f"{self.module.source.path} - stage {self.stage}"]

    def derivatives(self, f: Function | None, derivs: list[Function]) -> View:
        """F's forward graph (F given, or the first n outputs of the one derivative) with
        one backward part per derivative."""
        if f is None:
            (d,) = derivs
            n_out = _n_outputs(d)
            outputs = list(d.outputs[:n_out])
            primal = list(d.params[: len(d.params) - len(_cotangents(d))])
            title = f"{d.name} = {d.kind} {d.derivative.of} wrt {', '.join(d.derivative.wrt)}"
        else:
            outputs, primal = list(f.outputs), list(f.params)
            title = f"fn {f.name}" + (f" and its derivative{'s' if len(derivs) > 1 else ''} "
                                      f"{', '.join(d.name for d in derivs)}" if derivs else "")
        cts = [_cotangents(d) for d in derivs]
        for p in primal + [c for cs in cts for c in cs]:
            self.names.bind(p)
        order = topo_order(outputs + [o for d in derivs for o in d.outputs])
        for n in order:
            self.names.bind(n)

        # parts: the forward one, then one backward part per derivative (first claim wins)
        parts = [Part("forward", f"forward: {f.name if f else derivs[0].derivative.of}")]
        part_of = {n.id: 0 for n in topo_order(outputs)}
        part_of.update((p.id, 0) for p in primal)
        for k, (d, cs) in enumerate(zip(derivs, cts), start=1):
            parts.append(Part("backward", f"backward: {d.name} (wrt {', '.join(d.derivative.wrt)})"))
            for n in cs + topo_order(d.outputs):
                part_of.setdefault(n.id, k)

        wrt = {w for d in derivs for w in d.derivative.wrt}
        for p in primal:
            name = p.attr("name")
            self._param(p, "wrt" if name in wrt else "input", 0, "wrt input" if name in wrt else "input")
        for k, cs in enumerate(cts, start=1):
            for j, c in enumerate(cs):
                self._param(c, "cotangent", k, f"cotangent of output {j}")
        drawn_outputs = {o.id for o in outputs} | {o.id for d in derivs for o in d.outputs}
        for n in order:
            if n.is_param and n.id not in self.item_of:  # a derivative whose params are not F's
                self._param(n, "input", part_of[n.id], "input")
            elif not n.is_param and (not n.is_literal or n.id in drawn_outputs):
                self._op(n, part_of[n.id])

        if f is None:
            self._mark_outputs(derivs[0].outputs)
        else:
            self._mark_outputs(outputs)
            for d in derivs:
                n_out = _n_outputs(d)
                self._mark_outputs(d.outputs[n_out:], lambda k, d=d, n=n_out: f"{d.name} output {n + k}")
        for d in derivs:
            fwd = self.module.pair(d)[0]
            n_out = fwd.derivative.n_primal_outputs
            by = f" by {fwd.name}" if len(derivs) > 1 else ""
            for r, rname in zip(fwd.outputs[n_out:], fwd.derivative.residual_names):
                if r.id in self.item_of:  # size carriers are `dim` values, folded into labels here
                    self.items[self.item_of[r.id]].saved.append(f"saved as {rname}{by}")
        return View(self._title(title), parts, self.items, self._edges(), self.module.source)

    def alone(self, f: Function) -> View:
        """NAME_fwd, NAME_bwd (or another kind) on its own, in one part."""
        for p in f.params:
            self.names.bind(p)
        order = topo_order(f.outputs)
        for n in order:
            self.names.bind(n)
        d = f.derivative
        wrt = set(d.wrt) if d is not None else set()
        base = d.name if d is not None else f.name  # NAME of NAME_fwd / NAME_bwd
        part = d.part if d is not None else None
        if part is FnPart.BWD:
            parts = [Part("backward", f"backward: {f.name}")]
            n_res = d.n_residuals
            for k, (p, port) in enumerate(zip(f.params, d.params)):
                if port.slot is Slot.SIZE:
                    self._param(p, "size", 0, f"size {p.attr('carries')}")
                elif port.slot is Slot.RESIDUAL:
                    self._param(p, "residual", 0, "residual").saved.append(f"from {base}_fwd")
                elif port.slot is Slot.SEED:
                    self._param(p, "cotangent", 0, "seed")
                else:
                    self._param(p, "cotangent", 0, f"cotangent of output {k - n_res}")
            title = f"{f.name}: the backward pass of {base}"
        else:
            parts = [Part("forward", f"forward: {f.name}")]
            for p in f.params:
                name = p.attr("name")
                self._param(p, "wrt" if name in wrt else "input", 0, "wrt input" if name in wrt else "input")
            title = f"{f.name}: the forward pass of {base}" if part is FnPart.FWD else f"{f.kind} {f.name}"
        outs = {o.id for o in f.outputs}
        for n in order:
            if not n.is_param and (not n.is_literal or n.id in outs):
                self._op(n, 0)
        self._mark_outputs(f.outputs)
        if part is FnPart.FWD:
            n_out = d.n_primal_outputs
            for r, rname in zip(f.outputs[n_out:], d.residual_names):
                self.items[self.item_of[r.id]].saved.append(f"saved as {rname}")
        return View(self._title(title), parts, self.items, self._edges(), self.module.source)


# ---- collapsing --------------------------------------------------------------------------
def collapse_statements(view: View) -> View:
    """One box per (part, source line): the statement's text and the ops it contains.

    Parameters stay as they are, and so do nodes without a span. Edges between boxes
    are kept once; edges inside a box disappear."""
    items: list[Item] = []
    new_of: dict[int, int] = {}
    groups: dict[tuple, int] = {}
    for k, it in enumerate(view.items):
        span = it.nodes[0].span
        if it.role != "op" or span is None:
            new_of[k] = len(items)
            items.append(it)
            continue
        key = (it.part, span.file, span.line)
        g = groups.get(key)
        if g is None:
            g = groups[key] = len(items)
            text = _source_line(view.source, span) or f"line {span.line}"
            items.append(Item("statement", it.part, [text], it.where, it.tooltip, ref=clip(text, 30)))
        group = items[g]
        group.nodes.extend(it.nodes)
        group.saved.extend(it.saved)
        group.outputs.extend(it.outputs)
        new_of[k] = g
    for item in items:
        if item.role == "statement":
            counts = Counter(n.op.name for n in item.nodes)
            ops = [op + (f" x{counts[op]}" if counts[op] > 1 else "")
                   for op in dict.fromkeys(n.op.name for n in item.nodes)]
            item.head.append(", ".join(ops))
            item.outputs.sort(key=_output_order)
    edges: dict[tuple[int, int], None] = {}
    for s, d in view.edges:
        if new_of[s] != new_of[d]:
            edges.setdefault((new_of[s], new_of[d]))
    return View(view.title, view.parts, items, list(edges), view.source)


def split_fanout(view: View, limit: int = FANOUT) -> View:
    """A box with more than `limit` out-edges keeps its place and full label, and each of
    its users gets a small reference box naming it instead of a long edge.

    dot lays a long edge out as a chain of virtual nodes, one per rank it crosses: the
    parameters of a 40-layer network, used in every layer, would cost tens of thousands
    of them (minutes of layout); reference boxes keep a 500-node graph to seconds."""
    fan = Counter(s for s, _ in view.edges)
    wide = {s for s, k in fan.items() if k > limit}
    if not wide:
        return view
    items = list(view.items)
    edges: list[tuple[int, int]] = []
    for s, d in view.edges:
        if s not in wide:
            edges.append((s, d))
            continue
        src = view.items[s]
        tip = f"{src.ref}: drawn once ({src.where or 'no source line'}), referenced at each of its {fan[s]} uses"
        head = [src.ref] + ([src.where] if src.where else [])
        items.append(Item("ref", view.items[d].part, head, tooltip=tip, ref=src.ref, origin=s))
        edges.append((len(items) - 1, d))
    return View(view.title, view.parts, items, edges, view.source)


def _output_order(text: str):
    head, _, k = text.rpartition(" ")
    return (head, int(k)) if k.isdigit() else (text, 0)


# ---- DOT ---------------------------------------------------------------------------------
def to_dot(view: View) -> str:
    out = ["digraph tapeless {",
           f"  graph [label={dot_label(view.title)}, labelloc=t, fontname=\"Helvetica\", fontsize=12];",
           '  node [fontname="Helvetica", fontsize=10];',
           '  edge [arrowsize=0.7];']
    keys: dict[int, str] = {}
    for p, part in enumerate(view.parts):
        members = [k for k, it in enumerate(view.items) if it.part == p]
        if not members:
            continue
        out.append(f"  subgraph cluster_{p} {{")
        out.append(f"    graph [label={dot_label([part.label])}, {CLUSTER[part.kind]}];")
        for k in members:
            it = view.items[k]
            keys[k] = f"n{len(keys)}"
            fill = FILL[view.items[it.origin].role if it.origin is not None else it.role]
            attrs = [f"label={dot_label(it.lines)}", STYLE[it.role], f'fillcolor="{fill}"']
            if it.saved:
                attrs.append(SAVED)
            if it.outputs:
                attrs.append(OUTPUT)
            if it.tooltip:
                attrs.append(f"tooltip={dot_label([it.tooltip])}")
            out.append(f"    {keys[k]} [{', '.join(attrs)}];")
        out.append("  }")
    for s, d in view.edges:
        origin = view.items[s].origin
        src_part = view.items[s if origin is None else origin].part
        kinds = (view.parts[src_part].kind, view.parts[view.items[d].part].kind)
        if kinds == ("backward", "backward"):  # drawn upwards: user above input, arrow still into the user
            out.append(f"  {keys[d]} -> {keys[s]}{EDGE[kinds]};")
        else:
            out.append(f"  {keys[s]} -> {keys[d]}{EDGE[kinds]};")
    out.append("}")
    return "\n".join(out) + "\n"


def graph_text(module: Module, name: str, stage: str = "adjoint", collapse: str = "none",
               fanout: int = FANOUT) -> str:
    """The DOT text of `tapeless graph` for a module at `stage` (already run to that stage)."""
    if collapse not in COLLAPSE:
        raise GraphError(f"unknown --collapse {clean(collapse)!r}; expected one of {', '.join(COLLAPSE)}")
    view = build_view(module, name, stage)
    if collapse == "statements":
        view = collapse_statements(view)
    return to_dot(split_fanout(view, fanout))


def stage_module(source: SourceFile, stage: str) -> Module:
    """The module at `stage` (typed: the file's fns; adjoint: and their derivatives; optimized)."""
    if stage not in STAGES:
        raise GraphError(f"unknown stage {clean(stage)!r}; expected one of {', '.join(STAGES)}")
    program = pipeline.typed_stage(pipeline.parse_stage(source))
    if stage == "typed":
        return program.typed
    module = pipeline.adjoint_stage(program)
    return pipeline.optimize_stage(module) if stage == "optimized" else module


# ---- rendering and output ----------------------------------------------------------------
def output_format(path: str | None) -> str:
    """"dot", "svg" or "png" from the output name (no name or "-": DOT on standard output)."""
    if path in (None, "-"):
        return "dot"
    fmt = FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise GraphError(f"{clean(path)}: unknown output format; the name must end in "
                         f"{', '.join(FORMATS)}")
    return fmt


def find_dot(fmt: str) -> str:
    exe = shutil.which("dot")
    if exe is None:
        raise GraphError(f"rendering .{fmt} needs Graphviz's `dot` program (Debian/Ubuntu: apt-get install "
                         "graphviz; macOS: brew install graphviz); use -o FILE.dot for the DOT text")
    return exe


def render(text: str, fmt: str, timeout: float | None = None) -> bytes:
    """DOT text rendered by Graphviz's `dot -T<fmt>` (at most `timeout` seconds, RENDER_TIMEOUT by default)."""
    exe = find_dot(fmt)
    timeout = RENDER_TIMEOUT if timeout is None else timeout
    try:
        r = subprocess.run([exe, f"-T{fmt}"], input=text.encode("utf-8"), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise GraphError(f"Graphviz's `dot` did not finish within {timeout:g} s; "
                         "try --collapse statements, or -o FILE.dot for the DOT text") from None
    except OSError as e:
        raise GraphError(f"cannot run Graphviz's `dot` ({exe}): {e.strerror}") from None
    if r.returncode != 0:
        message = clip(clean(r.stderr.decode("utf-8", "replace").strip()), 300)
        raise GraphError(f"Graphviz's `dot -T{fmt}` failed with status {r.returncode}: {message}")
    return r.stdout


def graph_command(source: SourceFile, name: str, output: str | None = None, stage: str = "adjoint",
                  collapse: str = "none") -> int:
    """`tapeless graph`: DOT to standard output or a .dot file, SVG or PNG through `dot`."""

    fmt = output_format(output)
    if fmt != "dot":
        find_dot(fmt)  # before compiling: say what to install first
    text = graph_text(stage_module(source, stage), name, stage, collapse)
    if output in (None, "-"):
        sys.stdout.write(text)
        return 0
    try:
        if fmt == "dot":
            pipeline.write_atomic(output, text)
        elif fmt == "svg":
            pipeline.write_atomic(output, render(text, fmt).decode("utf-8"))
        else:
            pipeline.write_atomic(output, render(text, fmt))
    except OSError as e:
        raise GraphError(f"{clean(output)}: cannot write: {e.strerror}") from None
    return 0
