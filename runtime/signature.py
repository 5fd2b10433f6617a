"""A generated function's declared types, from its `__tapeless__` entry, for the interop tools.

`__tapeless__[NAME]["in_types"]` / `["out_types"]` give each parameter's and each result's
(dtype, shape); a dimension is an int, a size symbol's name, or a polynomial in the symbols
as ((symbols, coefficient), ...). `bind_sizes` reads the symbols off the arguments' shapes
and `result_types` evaluates the results' shapes: what jax_function declares to
`jax.pure_callback`, what torch_function checks dtypes against, where dask_grad finds the batch
axis. Pure Python and NumPy: no tool's library is imported here.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Sequence

import numpy as np

DTYPES = {"bool": np.bool_, "i32": np.int32, "i64": np.int64, "f16": np.float16, "f32": np.float32,
          "f64": np.float64}


def entry_of(fn: Callable) -> tuple[str, dict]:
    """(name, `__tapeless__` entry) of a function of a generated module; TypeError otherwise."""
    table = getattr(fn, "__globals__", {}).get("__tapeless__")
    name = getattr(fn, "__name__", None)
    if not isinstance(table, dict) or name not in table:
        raise TypeError(f"{fn!r} is not a function of a tapeless-generated module "
                        "(expected e.g. m.f_grad from tapeless.runtime.load)")
    return name, table[name]


def derivative_entry(fn: Callable, tool: str, accepted: tuple[str, ...]) -> tuple[str, dict]:
    """(name, entry) of the whole function of one of the `accepted` directives (the interop tools
    need its NAME_fwd/NAME_bwd pair); a TypeError saying what fn is and what to pass instead."""
    name, entry = entry_of(fn)
    if entry.get("directive") in accepted and entry.get("part") == "whole":
        return name, entry
    kind, part = entry.get("kind"), entry.get("part")
    directives = " or ".join(f"`{d}`" for d in accepted)
    if part in ("fwd", "bwd"):
        what = (f"the {part} half of `{entry.get('directive')} {entry.get('of')}` (pass the whole function, "
                f"m.{entry['pair'][0][:-4]})")
    elif kind == "fn":
        what = "a plain function (add " + " or ".join(f"`{d} {name} wrt ...`" for d in accepted) + " to the .tl file)"
    else:
        what = f"made by a `{kind}` directive (accepted: {', '.join(f'`{d}`' for d in accepted)})"
    raise TypeError(f"{tool}({name}): {name} is {what}; {tool} takes the whole function of a {directives} "
                    f"directive (e.g. m.layer_grad), whose _fwd/_bwd pair gives the reverse pass")


def companion(fn: Callable, name: str) -> Callable:
    """Another function of fn's module, by its generated name (NAME_fwd, NAME_bwd)."""
    return fn.__globals__[name]


def backend_of(fn: Callable) -> str:
    """The backend fn's module was compiled for: "cupy" (arrays on a GPU), "numba" or "numpy" (arrays
    in host memory). Read off the library the module imports (a module imports cupy as `cp`, numba
    as `numba`), which works under `python -OO` too, where the docstring's "Backend:" line is gone;
    a .tl function of that name in another backend's module is not a module, so it is not mistaken."""
    g = fn.__globals__

    def imported(alias: str, library: str) -> bool:
        return isinstance(g.get(alias), ModuleType) and g[alias].__name__ == library

    return "cupy" if imported("cp", "cupy") else "numba" if imported("numba", "numba") else "numpy"


def dtype_of(t: tuple) -> np.dtype:
    return np.dtype(DTYPES[t[0]])


def bind_sizes(name: str, entry: dict, shapes: Sequence[tuple[int, ...]]) -> dict[str, int]:
    """Each size symbol's value, read off the parameters declared with it as a whole dimension.
    ValueError (naming the function and the argument) when a rank or a size disagrees."""
    sizes: dict[str, int] = {}
    for pname, (_, dims), shape in zip(entry["params"], entry["in_types"], shapes):
        if len(shape) != len(dims):
            raise ValueError(f"{name}: argument {pname!r} should have rank {len(dims)}, got shape {tuple(shape)}")
        for d, n in zip(dims, shape):
            if isinstance(d, str):
                if sizes.setdefault(d, int(n)) != int(n):
                    raise ValueError(f"{name}: argument {pname!r} has {d} = {n}, but an earlier argument "
                                     f"has {d} = {sizes[d]}")
            elif isinstance(d, int) and d != n:
                raise ValueError(f"{name}: argument {pname!r} should have shape {dims_text(dims)}, got {tuple(shape)}")
    return sizes


def dim_value(d: Any, sizes: dict[str, int]) -> int:
    if isinstance(d, int):
        return d
    if isinstance(d, str):
        return sizes[d]
    total = 0
    for symbols, coefficient in d:
        term = coefficient
        for s in symbols:
            term *= sizes[s]
        total += term
    return total


def shape_of(dims: Sequence[Any], sizes: dict[str, int]) -> tuple[int, ...]:
    return tuple(dim_value(d, sizes) for d in dims)


def result_types(name: str, entry: dict, shapes: Sequence[tuple[int, ...]]) -> list[tuple[np.dtype, tuple[int, ...]]]:
    """(dtype, shape) of each result of the function for arguments of these shapes."""
    sizes = bind_sizes(name, entry, shapes)
    return [(dtype_of(t), shape_of(t[1], sizes)) for t in entry["out_types"]]


def dims_text(dims: Sequence[Any]) -> str:
    def one(d):
        if isinstance(d, (int, str)):
            return str(d)
        return " + ".join("*".join([str(c)] * (c != 1 or not m) + list(m)) for m, c in d).replace("+ -", "- ")
    return "[" + ", ".join(one(d) for d in dims) + "]"
