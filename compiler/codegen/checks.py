"""Argument validation in generated functions (docs/language.md, "Generated modules").

Each entry point converts its array arguments (an array of the declared dtype
is used as is; anything else goes through `_array`, which converts with
`same_kind` casting or raises TypeError), checks every rank, binds the size
symbols from the first argument that has them, and compares all shapes in one
tuple test. The slow paths (`_rank_error`, `_shape_error`) only build the
message: which function, which argument, what was expected, what was given.
A `_bwd` checks its residuals the same way, except that they are never converted:
each must have exactly the dtype its `_fwd` gave it (`_residual`).

Without checks (`--no-checks`) the arguments are still converted, by the cheapest
correct means (`_float64(x)`, `np.asarray(y, _F64)`) and only when they are not
already of the declared type, so a Python number or a list works as it does with
checks; nothing is validated.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from ..core.ir import Node
from ..core.types import Dim, TensorType, dim_text
from .names import place

CHECK_HELPERS = '''def _array(v, dtype, fn, name, spec):
    """v as an array of `dtype` (same_kind casting), or TypeError naming the argument."""
    try:
        a = xp.asarray(v)
    except Exception:
        raise TypeError(f"{fn}(): argument `{name}` must be {spec}, got {type(v).__name__}") from None
    if a.dtype.kind not in "biuf" or not xp.can_cast(a.dtype, dtype, "same_kind"):
        raise TypeError(f"{fn}(): argument `{name}` must be {spec}: cannot convert {a.dtype} "
                        f"to {xp.dtype(dtype).name} (same_kind casting)")
    if a.dtype.kind in "iu" and xp.dtype(dtype).kind in "iu" and a.size and not xp.can_cast(a.dtype, dtype):
        info = xp.iinfo(dtype)  # a narrowing integer conversion: never wrap around silently
        if int(a.min()) < info.min or int(a.max()) > info.max:
            raise ValueError(f"{fn}(): argument `{name}` must be {spec}: values from {int(a.min())} to "
                             f"{int(a.max())} do not fit {xp.dtype(dtype).name}")
    return a.astype(dtype, copy=False)


def _scalar(v, dtype, fn, name, spec):
    """v as a scalar of `dtype`, or TypeError/ValueError naming the argument."""
    a = _array(v, dtype, fn, name, spec)
    if a.ndim != 0:
        raise ValueError(f"{fn}(): argument `{name}` must be a scalar ({spec}), got shape {tuple(a.shape)}")
    return a[()]


def _what(name):
    """An argument's name as messages show it; `name` may instead be a phrase ("residual `x`")."""
    return name if " " in name else f"argument `{name}`"


def _residual(v, dtype, fn, name, spec, fwd, scalar=False):
    """A residual as `fwd` returned it: exactly `dtype` (never converted), else TypeError naming it;
    a scalar one 0-d (its rank and shape, for arrays, are checked with the arguments')."""
    if getattr(v, "dtype", None) == dtype and hasattr(v, "ndim") and (not scalar or v.ndim == 0):
        return v[()] if scalar else v
    got = f"{v.dtype}{list(v.shape)}" if hasattr(v, "dtype") and hasattr(v, "shape") else type(v).__name__
    raise TypeError(f"{fn}(): residual `{name}` must be {spec} as {fwd} returns it, got {got}")


def _rank_error(fn, args):
    for value, name, spec, ndim in args:
        if value.ndim != ndim:
            raise ValueError(f"{fn}(): {_what(name)} must be {spec} ({ndim}-D), "
                             f"got an array of shape {tuple(value.shape)}")


def _size_error(fn, what, where, sizes):
    given = ", ".join(f"{s} = {v}" for s, v in sizes)
    raise ValueError(f"{fn}(): with {given}, {what} (at {where})")


def _shape_error(fn, args, bound):
    sizes = ", ".join(f"{s} = {v} (from {_what(a)})" for s, v, a in bound)
    for value, name, spec, expected in args:
        if tuple(value.shape) != tuple(expected):
            where = f" with {sizes}" if sizes else ""
            raise ValueError(f"{fn}(): {_what(name)} must be {spec}, i.e. shape {tuple(expected)}{where}; "
                             f"got shape {tuple(value.shape)}")


def _out_buffers(out, specs, fn, args=()):
    """The `out=` gradient buffers, checked: a tuple (or list) of one writeable array per wrt name,
    exact dtype and shape (a bare array for one name); none overlapping an argument in `args`
    ((array, name) pairs) when gradients are added into them while the arguments are still read."""
    bufs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    if len(bufs) != len(specs):
        names = ", ".join(f"`{name}`" for name, _, _ in specs)
        given = f"a {type(out).__name__} of {len(bufs)}" if isinstance(out, (tuple, list)) else "one array"
        raise ValueError(f"{fn}(): out= needs a tuple of {len(specs)} arrays, one per wrt name ({names}); "
                         f"got {given}")
    for buf, (name, dtype, shape) in zip(bufs, specs):
        if not isinstance(buf, xp.ndarray) or buf.dtype != dtype or tuple(buf.shape) != tuple(shape):
            got = f"{buf.dtype}{list(buf.shape)}" if isinstance(buf, xp.ndarray) else type(buf).__name__
            raise ValueError(f"{fn}(): out buffer for `{name}` must be a {xp.dtype(dtype).name} array "
                             f"of shape {tuple(shape)}, got {got}")
        if not buf.flags.writeable:
            raise ValueError(f"{fn}(): out buffer for `{name}` is read-only")
        for arg, arg_name in args:
            if xp.may_share_memory(buf, arg):
                raise ValueError(f"{fn}(): out buffer for `{name}` overlaps {_what(arg_name)}; "
                                 f"gradients are added into it while it is still read")
    return bufs


def _residual_tuple(residuals, n, fn, fwd):
    if not isinstance(residuals, (tuple, list)) or len(residuals) != n:
        got = f"{len(residuals)} values" if isinstance(residuals, (tuple, list)) else type(residuals).__name__
        raise ValueError(f"{fn}(): `residuals` must be the tuple of {n} returned by {fwd}, got {got}")
    return residuals
'''


@dataclass
class Arg:
    var: str  # the Python variable
    node: Node  # the param node
    label: str  # its source name
    residual: bool = False  # a residual of a _bwd (checked, never converted)

    @property
    def type(self) -> TensorType:
        return self.node.type

    @property
    def shown(self) -> str:
        """How messages name it: a plain name is an argument (`_what`), else the phrase."""
        return f"residual `{self.label}`" if self.residual else self.label


@functools.lru_cache(maxsize=1024)  # (every fn's arguments: a module has few distinct types)
def spec_text(t: TensorType) -> str:
    return str(t.strong())


def convert_lines(ctx, fn_name: str, args: list[Arg]) -> list[str]:
    """Conversion of each argument to its declared dtype (and to a NumPy scalar for 0-d)."""
    lines = []
    for a in args:
        dt = ctx.dtype_const(a.type.dtype)
        spec = spec_text(a.type)
        if a.type.rank == 0 and ctx.backend.caps.scalars_as_numpy:
            lines.append(f"if type({a.var}) is not {ctx.scalar_type(a.type.dtype)}:")
            lines.append(f"    {a.var} = {ctx.helper('scalar')}({a.var}, {dt}, {fn_name!r}, {a.label!r}, {spec!r})")
        else:
            lines.append(f"if type({a.var}) is not {ctx.xp}.ndarray or {a.var}.dtype is not {dt}:")
            lines.append(f"    {a.var} = {ctx.helper('array')}({a.var}, {dt}, {fn_name!r}, {a.label!r}, {spec!r})")
    return lines


def coerce_lines(ctx, args: list[Arg]) -> list[str]:
    """Without checks: each argument made its declared type only when it is not (a Python
    number, a list, another dtype), by the cheapest call that does it; nothing is validated."""
    lines = []
    for a in args:
        if a.type.rank == 0 and ctx.backend.caps.scalars_as_numpy:
            scalar = ctx.scalar_type(a.type.dtype)
            lines.append(f"if type({a.var}) is not {scalar}:")
            lines.append(f"    {a.var} = {scalar}({a.var})")
        else:
            dt = ctx.dtype_const(a.type.dtype)
            lines.append(f"if type({a.var}) is not {ctx.xp}.ndarray or {a.var}.dtype is not {dt}:")
            lines.append(f"    {a.var} = {ctx.xp}.asarray({a.var}, {dt})")
    return lines


def residual_lines(ctx, fn_name: str, fwd_name: str, args: list[Arg]) -> list[str]:
    """A _bwd's residuals: exactly the dtype the matching _fwd returns (a residual is never
    converted; rank and shape are checked with the arguments')."""
    lines = []
    for a in args:
        dt = ctx.dtype_const(a.type.dtype)
        spec = spec_text(a.type)
        scalar = a.type.rank == 0 and ctx.backend.caps.scalars_as_numpy
        if scalar:
            lines.append(f"if type({a.var}) is not {ctx.scalar_type(a.type.dtype)}:")
        else:
            lines.append(f"if type({a.var}) is not {ctx.xp}.ndarray or {a.var}.dtype is not {dt}:")
        lines.append(f"    {a.var} = {ctx.helper('residual')}({a.var}, {dt}, {fn_name!r}, {a.label!r}, {spec!r}, "
                     f"{fwd_name!r}{', scalar=True' if scalar else ''})")
    return lines


def array_args(ctx, args: list[Arg]) -> list[Arg]:
    return [a for a in args if a.type.rank > 0 or not ctx.backend.caps.scalars_as_numpy]


def rank_lines(ctx, fn_name: str, args: list[Arg]) -> list[str]:
    arrs = array_args(ctx, args)
    if not arrs:
        return []
    cond = " or ".join(f"{a.var}.ndim != {a.type.rank}" for a in arrs)
    specs = ", ".join(f"({a.var}, {a.shown!r}, {spec_text(a.type)!r}, {a.type.rank})" for a in arrs)
    return [f"if {cond}:", f"    {ctx.helper('rank_error')}({fn_name!r}, ({specs},))"]


def symbol_sources(args: list[Arg], carriers: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Where each size symbol is read: symbol -> (Python text, what messages call the source),
    from the first argument that has it; a size the residuals carry comes from them first (the
    cotangents of a _bwd are checked against the forward pass's sizes)."""
    out = {sym: (f"int({var_src})", "the residuals") for sym, var_src in carriers.items()}
    for a in args:
        for k, d in enumerate(a.type.shape):
            if isinstance(d, Dim) and d.symbol_name:
                out.setdefault(d.symbol_name, (f"{a.var}.shape[{k}]", a.shown))
    return out


def bind_symbols(ctx, args: list[Arg], carriers: dict[str, str]) -> tuple[list[str], list[tuple[str, str, str]]]:
    """`N = x.shape[0]` for each size symbol, and (symbol, variable, source) for the messages."""
    lines, bound = [], []
    for sym, (src, shown) in symbol_sources(args, carriers).items():
        if sym not in ctx.symbols:
            var = ctx.bind_symbol(sym)
            lines.append(f"{var} = {src}")
            bound.append((sym, var, shown))
    return lines, bound


def shape_lines(ctx, fn_name: str, args: list[Arg], bound) -> list[str]:
    arrs = [a for a in array_args(ctx, args) if a.type.rank > 0]
    if not arrs:
        return []
    cond = " or ".join(f"{a.var}.shape != {ctx.shape(a.type.shape)}" for a in arrs)
    specs = ", ".join(f"({a.var}, {a.shown!r}, {spec_text(a.type)!r}, {ctx.shape(a.type.shape)})" for a in arrs)
    sizes = ", ".join(f"({s!r}, {v}, {src!r})" for s, v, src in bound)
    sizes = f"({sizes},)" if bound else "()"
    return [f"if {cond}:", f"    {ctx.helper('shape_error')}({fn_name!r}, ({specs},), {sizes})"]


def size_lines(ctx, fn_name: str, nodes, bound) -> list[str]:
    """Conditions on the sizes the arguments give, checked before any work: every size that can
    come out negative (N - 2 for x[1:-1], zeros([N - 5])) must not, and each primitive's own
    `requires` (x[2] needs N >= 3). A clear error naming the sizes and the source line, not a
    'negative dimensions' or IndexError from inside NumPy (or a silently empty value)."""
    conditions: dict = {}  # (condition text, what) -> node, in order
    shapes = set()  # (a shape's sizes are looked at once: their conditions came with its first node)
    for n in nodes:
        if n.shape not in shapes:
            shapes.add(n.shape)
            for d in n.shape:
                if isinstance(d, Dim) and any(c < 0 for _, c in d.terms):
                    conditions.setdefault((ctx.dim(d), f"the size {dim_text(d)} of a value would be negative"), n)
        requires = n.op.requires
        for d, what in (requires(n) if requires else ()):
            conditions.setdefault((ctx.dim(d), what), n)
    sizes = "(" + "".join(f"({s!r}, {v}), " for s, v, _ in bound) + ")"
    lines = []
    for (cond, what), n in conditions.items():  # the strings are reprs: nothing from the source is code
        lines.append(f"if {cond} < 0:")
        lines.append(f"    {ctx.helper('size_error')}({fn_name!r}, {what!r}, {place(n)!r}, {sizes})")
    return lines
