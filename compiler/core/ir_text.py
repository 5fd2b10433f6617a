"""The deterministic text form of the IR: `tapeless ir` output and the golden format.

    fn layer(x: f32[N, 5], y: f32[N, 3], w: f32[5, 3], b: f32[3]) -> f32   # layer.tl:2
      %0: f32[N, 3] = matmul(x, w)                                          # :3
      z: f32[N, 3] = add(%0, b)                                             # :3
      return z

One SSA equation per line, the type on the binder, the source line in a
comment. Scalars literals and size symbols print inline (`2.0:f32`, `N`).
Nothing depends on object identity, so the text is stable across runs.
"""
from __future__ import annotations

import math
from typing import Mapping

from .derivative import Part
from .ir import Function, Module, Node, topo_order
from .types import Dim, DType, dim_text


def format_value(v) -> str:
    if isinstance(v, Dim):
        return dim_text(v)
    if isinstance(v, DType):
        return v.short
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, tuple):
        inner = ", ".join(format_value(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    return repr(v)


def type_text(t) -> str:
    """A type in the IR's text form: `~` marks a weak (literal-like) dtype."""
    return str(t) + ("~" if t.weak else "")


def _const_text(n: Node) -> str:
    if n.is_dim:
        text = dim_text(n.attr("dim"))
    else:
        text = format_value(n.attr("value"))
    return f"{text}:{type_text(n.type)}"


def _described(d) -> list[tuple[str, object]]:
    """What the header line says of a derivative function after its signature."""
    if d is None:
        return []
    out = [("of", d.of), ("wrt", d.wrt)]
    if d.part is Part.FWD:
        out += [("n_outputs", d.n_primal_outputs), ("multi", d.primal_multi), ("residual_names", d.residual_names)]
    elif d.part is Part.BWD:
        out += [("n_residuals", d.n_residuals), ("seed", d.has_seed)]
    return out + [("summary", d.summary)]


class IrNames:
    """The IR text's names, in the order values are bound: a parameter's own name or a value's
    hint (Module.hints: the source variable, `d_x`, ...), `.1`, `.2` for repeats, `%0`, `%1`
    for values without one; literals are written inline (`2.0:f32`, `N:i64~`). `tapeless ir`,
    the golden files and `tapeless graph` all name values this way."""

    def __init__(self, hints: Mapping[int, str] | None = None):
        self.hints = hints or {}
        self.names: dict[int, str] = {}
        self.used: dict[str, int] = {}
        self.counter = 0

    def bind(self, n: Node) -> str | None:
        if n.is_literal:
            return None
        if n.id not in self.names:
            base = n.attr("name") if n.is_param else self.hints.get(n.id)
            if base:
                k = self.used.get(base, 0)
                self.used[base] = k + 1
                self.names[n.id] = base if k == 0 else f"{base}.{k}"
            else:
                self.names[n.id] = f"%{self.counter}"
                self.counter += 1
        return self.names[n.id]

    def ref(self, n: Node) -> str:
        """How a value is referred to; one never bound (a parameter of another function, which
        the verifier reports) gets its name here."""
        return _const_text(n) if n.is_literal else self.bind(n)


def format_function(fn: Function, hints: Mapping[int, str] | None = None) -> str:
    """One function's text; `hints` are its module's names (Module.hints)."""
    names = IrNames(hints)
    bind, ref = names.bind, names.ref
    for p in fn.params:
        bind(p)
    params = ", ".join(f"{ref(p)}: {type_text(p.type)}" for p in fn.params)
    outs = [type_text(o.type) for o in fn.outputs]
    result = outs[0] if len(outs) == 1 and not fn.multi else "(" + ", ".join(outs) + ")"
    where = f"  # {fn.span.file}:{fn.span.line}" if fn.span else ""
    meta = "".join(f" {k}={format_value(v)}" for k, v in _described(fn.derivative))
    lines = [f"{fn.kind} {fn.name}({params}) -> {result}{meta}{where}"]
    for n in topo_order(fn.outputs):
        if n.is_leaf:
            continue
        args = ", ".join(ref(i) for i in n.inputs)
        attrs = ", ".join(f"{k}={format_value(v)}" for k, v in n.attrs if k not in ("weak",))
        call = f"{n.op}({args})" + (f" {{{attrs}}}" if attrs else "")
        lhs = f"{bind(n)}: {type_text(n.type)}"
        line = f"  {lhs} = {call}"
        if n.span:
            line = f"{line:<60}  # :{n.span.line}"
        lines.append(line)
    lines.append("  return " + ", ".join(ref(o) for o in fn.outputs))
    return "\n".join(lines)


def format_module(m: Module, kinds: tuple[str, ...] | None = None) -> str:
    fns = [f for f in m.functions if kinds is None or f.kind in kinds]
    return "\n\n".join(format_function(f, m.hints) for f in fns) + "\n"
