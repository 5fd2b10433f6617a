"""Derivative functions as typed data: what a generated function is and how it is laid out.

A directive (`grad F wrt a, b`) makes NAME, and for grad and vjp also NAME_fwd and NAME_bwd.
Each such function carries a Derivative record: the directive, which part it is, the function
it differentiates, the wrt names, and one Port per parameter and per output saying what it
holds. Everything that presents or checks derivatives reads the record (emit, the IR text,
graph, verify, the residual pass, the SymPy check, and through the generated module's
`__tapeless__` table, gradcheck), never a kind string or a name suffix.

    grad f wrt w           params                      outputs
      f_grad      WHOLE    x:primal w:primal           value:primal  w:gradient
      f_grad_fwd  FWD      x:primal w:primal           value:primal  r0:residual ...
      f_grad_bwd  BWD      r0:residual ... seed:seed   w:gradient
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class Part(enum.Enum):
    WHOLE = "whole"  # NAME: the value and its derivatives in one call
    FWD = "fwd"  # NAME_fwd: F's outputs and the residuals NAME_bwd needs
    BWD = "bwd"  # NAME_bwd: the gradients from the residuals and the cotangents


class Slot(enum.Enum):
    """What one parameter or output of a derivative function holds."""

    PRIMAL = "primal"  # an argument of F, or one of F's outputs
    COTANGENT = "cotangent"  # vjp: one per output of F
    SEED = "seed"  # grad's NAME_bwd: the scale of the output's gradient (keyword `seed`)
    TANGENT = "tangent"  # jvp: one per wrt argument
    VECTOR = "vector"  # hvp: one per wrt argument
    RESIDUAL = "residual"  # a value NAME_fwd saves for NAME_bwd
    SIZE = "size"  # a size symbol NAME_fwd passes to NAME_bwd as an integer
    GRADIENT = "gradient"  # d/d(a wrt argument), named after it
    OUTPUT_TANGENT = "output_tangent"  # jvp: the tangent of one of F's outputs
    HV = "hv"  # hvp: the Hessian-vector product for one wrt argument


@dataclass(frozen=True)
class Port:
    slot: Slot
    name: str

    def __repr__(self) -> str:
        return f"{self.name}:{self.slot.value}"


def ports(slot: Slot, names) -> tuple[Port, ...]:
    return tuple(Port(slot, n) for n in names)


@dataclass(frozen=True)
class Derivative:
    directive: str  # the directive's word: grad, vjp, jvp, hvp
    part: Part
    name: str  # NAME: the directive's function (NAME_fwd and NAME_bwd are its parts)
    of: str  # F, the function differentiated
    wrt: tuple[str, ...]
    params: tuple[Port, ...]
    outputs: tuple[Port, ...]
    primal_multi: bool = False  # F returns a tuple (NAME_fwd returns its outputs as F does)
    pair: tuple[str, str] | None = None  # (NAME_fwd, NAME_bwd) when the directive makes them
    accumulates: bool = False  # its gradient outputs take `out=` buffers (grad and vjp: NAME, NAME_bwd)
    summary: str = ""  # the sentence the generated docstring gives

    @property
    def kind(self) -> str:
        """How the IR text names the function: the directive for NAME, fwd or bwd for its parts."""
        return self.directive if self.part is Part.WHOLE else self.part.value

    def slots(self, where: tuple[Port, ...], *slots: Slot) -> list[int]:
        return [k for k, p in enumerate(where) if p.slot in slots]

    @property
    def n_residuals(self) -> int:
        """NAME_bwd's leading parameters that arrive packed as `residuals` (sizes included)."""
        return len(self.slots(self.params, Slot.RESIDUAL, Slot.SIZE))

    @property
    def n_primal_outputs(self) -> int:
        return len(self.slots(self.outputs, Slot.PRIMAL))

    @property
    def residual_names(self) -> tuple[str, ...]:
        """What NAME_fwd returns after F's outputs, in order."""
        return tuple(p.name for p in self.outputs if p.slot in (Slot.RESIDUAL, Slot.SIZE))

    @property
    def has_seed(self) -> bool:
        return any(p.slot is Slot.SEED for p in self.params)

    @property
    def n_gradients(self) -> int:
        """Trailing outputs that are gradients `out=` accumulates into."""
        return len(self.slots(self.outputs, Slot.GRADIENT)) if self.accumulates else 0

    @property
    def cotangent_params(self) -> list[int]:
        return self.slots(self.params, Slot.COTANGENT, Slot.SEED)

    def with_residuals(self, residuals: tuple[Port, ...]) -> "Derivative":
        """The record once a pass changed what NAME_fwd saves (residuals and sizes, in order)."""
        if self.part is Part.FWD:
            return replace(self, outputs=tuple(p for p in self.outputs if p.slot is Slot.PRIMAL) + residuals)
        if self.part is Part.BWD:
            rest = tuple(p for p in self.params if p.slot not in (Slot.RESIDUAL, Slot.SIZE))
            return replace(self, params=residuals + rest)
        raise ValueError(f"{self.name}: only NAME_fwd and NAME_bwd carry residuals")  # pragma: no cover

    def table(self) -> dict:
        """The record as plain data, for the generated module's `__tapeless__` table."""
        out = {"directive": self.directive, "part": self.part.value, "of": self.of, "wrt": self.wrt,
               "inputs": tuple((p.slot.value, p.name) for p in self.params),
               "outputs": tuple((p.slot.value, p.name) for p in self.outputs)}
        if self.pair is not None:
            out["pair"] = self.pair
        return out
