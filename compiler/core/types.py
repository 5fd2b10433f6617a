"""dtypes, symbolic dimensions and tensor types (docs/language.md, "Types and sizes").

A dimension is an `int` or a `Dim`: a polynomial with integer coefficients in
size symbols (`N`, `N*5`, `N + M`, `N - 1`). Parameters only ever carry plain
symbols; polynomials arise from `reshape(x, [-1])`, `concat` and slices.
A `Dim` that turns out constant is normalised to an `int`, so `shape == (3,)`
comparisons just work.

Weak typing: literals, size symbols used as values and constructors without
`dtype=` are *weak*: when one meets a strong tensor it takes that tensor's
dtype (NumPy 2 / NEP 50 rules for Python scalars).
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Union

import numpy as np

from .diagnostics import UserError


class DType(enum.Enum):
    BOOL = ("bool", "bool_", "b", 1)
    I32 = ("i32", "int32", "i", 4)
    I64 = ("i64", "int64", "i", 8)
    F16 = ("f16", "float16", "f", 2)
    F32 = ("f32", "float32", "f", 4)
    F64 = ("f64", "float64", "f", 8)

    def __init__(self, short: str, numpy_name: str, kind: str, itemsize: int):
        self.short = short
        self.numpy_name = numpy_name
        self.kind = kind
        self.itemsize = itemsize

    @property
    def is_float(self) -> bool:
        return self.kind == "f"

    @property
    def np(self) -> np.dtype:
        return np.dtype(self.numpy_name)

    @classmethod
    def from_name(cls, name: str) -> "DType | None":
        return _BY_SHORT.get(name)

    @classmethod
    def from_numpy(cls, dt) -> "DType":
        return _BY_NUMPY[np.dtype(dt).name]

    def __repr__(self) -> str:
        return self.short

    __str__ = __repr__


_BY_SHORT = {d.short: d for d in DType}
_BY_NUMPY = {np.dtype(d.numpy_name).name: d for d in DType}
DTYPE_NAMES = tuple(_BY_SHORT)


# ---- symbolic dimensions ---------------------------------------------------------
Monomial = tuple[str, ...]  # sorted symbol names, repeated for powers


class Dim:
    """An integer polynomial in size symbols. Immutable; constants normalise to int."""

    __slots__ = ("terms", "_hash")

    def __init__(self, terms: dict[Monomial, int]):
        self.terms = tuple(sorted((m, c) for m, c in terms.items() if c != 0))
        self._hash = hash(self.terms)

    @staticmethod
    def symbol(name: str) -> "Dim":
        return Dim({(name,): 1})

    @staticmethod
    def of(value: "DimLike") -> dict[Monomial, int]:
        if isinstance(value, Dim):
            return dict(value.terms)
        return {(): int(value)} if value else {}

    @staticmethod
    def make(terms: dict[Monomial, int]) -> "DimLike":
        terms = {m: c for m, c in terms.items() if c}
        if not terms:
            return 0
        if set(terms) == {()}:
            return terms[()]
        return Dim(terms)

    @property
    def symbols(self) -> set[str]:
        return {s for m, _ in self.terms for s in m}

    @property
    def symbol_name(self) -> str | None:
        """The name if this is exactly one symbol, else None."""
        if len(self.terms) == 1 and self.terms[0][1] == 1 and len(self.terms[0][0]) == 1:
            return self.terms[0][0][0]
        return None

    def __eq__(self, other) -> bool:
        return isinstance(other, Dim) and self.terms == other.terms

    def __hash__(self) -> int:
        return self._hash

    def __lt__(self, other) -> bool:  # for deterministic sorting only
        return repr(self) < repr(other)

    def __repr__(self) -> str:
        return dim_text(self)


DimLike = Union[int, Dim]
Shape = tuple[DimLike, ...]


def dim_add(a: DimLike, b: DimLike, sign: int = 1) -> DimLike:
    t = Dim.of(a)
    for m, c in Dim.of(b).items():
        t[m] = t.get(m, 0) + sign * c
    return Dim.make(t)


def dim_sub(a: DimLike, b: DimLike) -> DimLike:
    return dim_add(a, b, -1)


def dim_mul(a: DimLike, b: DimLike) -> DimLike:
    t: dict[Monomial, int] = {}
    for ma, ca in Dim.of(a).items():
        for mb, cb in Dim.of(b).items():
            m = tuple(sorted(ma + mb))
            t[m] = t.get(m, 0) + ca * cb
    return Dim.make(t)


def dim_prod(dims: Iterable[DimLike]) -> DimLike:
    dims = tuple(dims)
    if all(type(d) is int for d in dims):
        return math.prod(dims)
    return _dim_prod(dims)


@lru_cache(maxsize=4096)  # shapes repeat: a program has few distinct ones
def _dim_prod(dims: tuple[DimLike, ...]) -> DimLike:
    out: DimLike = 1
    for d in dims:
        out = dim_mul(out, d)
    return out


def dim_div(a: DimLike, b: DimLike) -> DimLike | None:
    """Exact division a / b when b is a single term dividing every term of a; else None."""
    tb = Dim.of(b)
    if len(tb) != 1:
        return 1 if Dim.of(a) == tb else None
    (mb, cb), = tb.items()
    out: dict[Monomial, int] = {}
    for ma, ca in Dim.of(a).items():
        rest = list(ma)
        for s in mb:
            if s not in rest:
                return None
            rest.remove(s)
        if ca % cb:
            return None
        out[tuple(rest)] = ca // cb
    return Dim.make(out)


def dim_subst(d: DimLike, env: dict[str, DimLike]) -> DimLike:
    if isinstance(d, int):
        return d
    out: DimLike = 0
    for m, c in d.terms:
        term: DimLike = c
        for s in m:
            term = dim_mul(term, env.get(s, Dim.symbol(s)))
        out = dim_add(out, term)
    return out


def symbols_in(v) -> set[str]:
    """Size symbols in a dim, or in tuples of them nested in any way (shapes, node attributes)."""
    if isinstance(v, Dim):
        return set(v.symbols)
    if isinstance(v, tuple):
        return set().union(*map(symbols_in, v))
    return set()


def dim_text(d: DimLike, python: bool = False, names: dict[str, str] | None = None) -> str:
    """`N*M + 2*K - 1`. With `python`, a valid Python expression over the symbol names."""
    if isinstance(d, int):
        return str(d)
    parts = []
    for i, (m, c) in enumerate(sorted(d.terms, key=lambda t: (-len(t[0]), t[0]))):
        syms = [names.get(s, s) if names else s for s in m]
        mag = abs(c)
        body = "*".join(([str(mag)] if mag != 1 or not syms else []) + syms)
        sign = "-" if c < 0 else "+"
        if i == 0:
            parts.append(("-" if c < 0 else "") + body)
        else:
            parts.append(f" {sign} {body}")
    text = "".join(parts)
    return f"({text})" if python and len(d.terms) > 1 else text


def shape_text(shape: Shape) -> str:
    return "[" + ", ".join(dim_text(d) for d in shape) + "]"


def shape_symbols(shape: Shape) -> set[str]:
    return {s for d in shape if isinstance(d, Dim) for s in d.symbols}


# ---- tensor types ----------------------------------------------------------------
@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: Shape = ()
    weak: bool = False  # a literal-like value whose dtype yields to a strong operand

    def __post_init__(self):
        # the fields' hash, computed once: every node made is interned under its type, and
        # types are hashed far more often than made
        object.__setattr__(self, "_hash", hash((self.dtype, self.shape, self.weak)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def rank(self) -> int:
        return len(self.shape)

    def with_(self, dtype: DType | None = None, shape: Shape | None = None, weak: bool | None = None):
        return TensorType(
            dtype if dtype is not None else self.dtype,
            tuple(shape) if shape is not None else self.shape,
            self.weak if weak is None else weak,
        )

    def strong(self) -> "TensorType":
        return self.with_(weak=False)

    def __str__(self) -> str:
        """The type as a user writes it (weakness is an internal matter: see core/ir_text.py)."""
        return self.dtype.short if not self.shape else f"{self.dtype.short}{shape_text(self.shape)}"


def parse_dtype(name: str) -> DType:
    d = DType.from_name(name)
    if d is None:
        raise UserError(f"unknown dtype `{name}`; expected one of {', '.join(DTYPE_NAMES)}")
    return d


# ---- broadcasting (docs/language.md, "Types and sizes") ----------------------------------
class BroadcastError(UserError):
    pass


def broadcast_shapes(*shapes: Shape) -> Shape:
    """NumPy broadcasting, checked statically: `1` stretches, a symbol matches itself or 1."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[DimLike] = []
    for axis in range(-rank, 0):
        sizes = [s[axis] for s in shapes if len(s) >= -axis]
        real = [d for d in sizes if d != 1]
        first = real[0] if real else 1
        for d in real[1:]:
            if d != first:
                raise BroadcastError(
                    f"cannot broadcast shapes {', '.join(shape_text(s) for s in shapes)}: "
                    f"axis {axis} has size {dim_text(first)} in one and {dim_text(d)} in another"
                )
        out.append(first)
    return tuple(out)


def broadcast_to_ok(src: Shape, dst: Shape) -> bool:
    if len(src) > len(dst):
        return False
    return all(s == 1 or s == d for s, d in zip(reversed(src), reversed(dst)))


# ---- promotion (NumPy 2 with weak Python scalars, NEP 50) --------------------------
@lru_cache(maxsize=1024)  # asked for every binary node; a program has few distinct operand types
def promote(*types: TensorType) -> tuple[DType, bool]:
    """The common dtype of operands and whether the result is still weak."""
    strong = [t.dtype for t in types if not t.weak]
    weak = [t.dtype for t in types if t.weak]
    if not strong:
        kind = max((d.kind for d in weak), key="bif".index)
        return {"b": DType.BOOL, "i": DType.I64, "f": DType.F64}[kind], True
    result = DType.from_numpy(np.result_type(*[d.np for d in strong]))
    for w in weak:
        if w.kind == "f" and result.kind != "f":
            result = DType.F64
        elif w.kind == "i" and result.kind == "b":
            result = DType.I64
    return result, False


def default_float(dt: DType) -> DType:
    """The float dtype an integer/bool is turned into for `/`, `mean`, `sqrt`, ... (NumPy: f64)."""
    return dt if dt.is_float else DType.F64
