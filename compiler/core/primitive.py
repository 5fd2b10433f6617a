"""The primitive record and the registry: THE table of tapeless operations.

Each primitive keeps its facets side by side:

  infer   shape and dtype rule: input types + attrs -> result type (raises UserError,
          with `arg=` naming the operand at fault)
  emit    NumPy emission: (EmitContext, operand expressions, node) -> Py expression.
          Written against the backend alias `xp`; CuPy comes from the same text
          through the name table in codegen/backends.py
  vjp     reverse rule: (node, cotangent, needs) -> one cotangent per input (None = zero)
  jvp     forward rule: (node, tangents) -> output tangent (None = zero)
  sympy   meaning over SymPy scalars: (object arrays, node) -> object array.
          Written from the mathematical definition, never from the VJP rule,
          so the SymPy check compares two independent things.
  examples  small applications (input types, attrs, domains) on which
          tests/test_symcheck.py proves the VJP and JVP rules against sympy.diff

`differentiable=False` marks ops whose result carries no derivative
(comparisons, integer results); they need no vjp/jvp. `tests/test_primitive_table.py`
walks the registry and fails for a missing facet.
"""
from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class Primitive:
    name: str
    kind: str
    infer: Callable[..., Any]
    emit: Callable[..., Expr] | None = None
    vjp: Callable[..., Any] | None = None
    jvp: Callable[..., Any] | None = None
    sympy: Callable[..., Any] | None = None
    coerce: Callable[..., Any] | None = None  # operand dtype coercion, before infer
    fold: Callable[..., Any] | None = None  # evaluation on Python scalars, for literal folding
    differentiable: bool = True
    elementwise: bool = False
    doc: str = ""
    # example applications for the per-primitive SymPy proof: (input types, attrs, {input: domain})
    examples: tuple = ()
    # code generation facts
    ufunc: tuple | None = None  # in fused loops: xp.NAME(inputs..., *EXTRA, out=buffer); default: `fold`'s ufunc
    costly: bool = False  # tens of cycles per element (exp, log, ...): fused loops keep L2-sized blocks
    quiet: bool = False  # may meet inf/nan on the way to a right result: run without FP warnings
    # the result may share memory with an input: copied before being returned, never written
    # over; a bool, or view(node) -> bool where it depends on the node (einsum)
    view: bool | Callable[[Any], bool] = False
    reducer: str | None = None  # a reduction that is xp.NAME.reduce: fused loops total blocks and combine parts with it
    # run-time conditions on symbolic sizes: requires(node) -> [(d, what)], each d >= 0 for the
    # sizes given, else the generated function raises "with N = ..., <what>" (x[2] needs N >= 3)
    requires: Callable | None = None
    # its spelling in primitives after differentiation (-O1), expand(node, ops of the module),
    # so that a loss and its gradient share work (forms.py); None: emitted as itself
    expand: Callable | None = None

    def __post_init__(self) -> None:
        if self.ufunc is None and isinstance(self.fold, np.ufunc):
            self.ufunc = (self.fold.__name__, ())

    def is_view(self, node) -> bool:
        """Whether node's result (an application of this primitive) may share memory with an input."""
        return bool(self.view(node)) if callable(self.view) else self.view

    def facets(self) -> dict[str, bool]:
        return {
            "infer": self.infer is not None,
            "emit": self.emit is not None,
            "vjp": self.vjp is not None or not self.differentiable,
            "jvp": self.jvp is not None or not self.differentiable,
            "sympy": self.sympy is not None,
            "examples": bool(self.examples) or not self.differentiable or self.kind in ("leaf", "constructor"),
        }


REGISTRY: dict[str, Primitive] = {}


def register(prim: Primitive) -> Primitive:
    if prim.name in REGISTRY:
        raise ValueError(f"primitive {prim.name!r} registered twice")
    REGISTRY[prim.name] = prim
    return prim


def get(name: str) -> Primitive:
    return REGISTRY[name]
