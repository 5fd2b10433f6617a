"""Backends as strategies: what `xp` is, what the backend can do, and the helper sources.

Emission is written once, against the alias `xp`; a backend says what `xp` is (the module and
its alias), declares its capabilities, and supplies the few definitions that differ. Code
generation asks the capabilities (`backend.caps.fusion`), never the backend's name.

Helpers are plain source text over `xp`, copied into a generated module only when it uses
them, so modules stay standalone (numpy or cupy, and the standard library, nothing else).
Those an operation's emission calls are in its primitive record (Helper, core/primitive.py);
the code generator's own machinery (silencing warnings, running blocked loops) is here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..core.primitive import REGISTRY, Helper
from .kernels import numba_math  # (text only: no numba import)


@dataclass(frozen=True)
class Capabilities:
    # elementwise chains run as cache-blocked loops of ufunc calls (codegen/fused/); on a GPU
    # one pass per op is already cheap, and a blocked loop would only add launches
    fusion: bool = False
    # fused chains become compiled kernels written from the primitives' scalar expressions
    # (kernels/program.py, kernels/numba_writer.py), not blocked loops of ufunc calls
    compiled_kernels: bool = False
    # fused chains become CuPy ElementwiseKernel/ReductionKernel objects (kernels/cupy_writer.py),
    # their C++ written from the primitives' scalar expressions: one launch, not one per op
    cuda_kernels: bool = False
    # reshapes, transposes and slices are views of their input: a returned view is copied
    views: bool = True
    # einsum takes a contraction path computed once (optimize=...), which NumPy uses for BLAS
    einsum_paths: bool = False
    # 0-d arguments become NumPy scalars (fast scalar arithmetic)
    scalars_as_numpy: bool = False
    # a reduction over only a last axis of at most this many elements runs down the columns of
    # a transposed copy (primitives/reduce.py); 0: never
    short_last_axis: int = 0
    # fused loops sum a block down its rows as ones @ block (a BLAS matrix-vector product)
    gemv_column_sums: bool = False


@dataclass(frozen=True)
class Backend:
    name: str
    module: str
    alias: str
    caps: Capabilities
    imports: tuple[str, ...] = ()  # standard-library imports its overrides need
    modules: tuple[str, ...] = ()  # modules every generated module imports besides `module` (numba)
    keeps: frozenset = frozenset()  # composites -O1 leaves whole: the backend computes them by forms of its own
    preamble: str = ""  # module-level statements after the imports
    overrides: dict[str, str] = field(default_factory=dict)  # machinery helper name -> its source here

    def helper_source(self, helper: Helper) -> str:
        src = self.overrides.get(helper.name) or dict(helper.variants).get(self.name) or helper.source
        return re.sub(r"\bxp\.", self.alias + ".", src)


NUMPY = Backend("numpy", "numpy", "np", Capabilities(
    fusion=True, einsum_paths=True, scalars_as_numpy=True, short_last_axis=16, gemv_column_sums=True))
CUPY = Backend(
    "cupy", "cupy", "cp", Capabilities(cuda_kernels=True), imports=("import contextlib",),
    overrides={
        "quiet": '''def _quiet():
    """CuPy never warns about floating-point values; nothing to silence."""
    return contextlib.nullcontext()
''',
    },
)
# NumPy everywhere, and each fused chain one numba kernel (matrix products stay NumPy/BLAS calls)
NUMBA = Backend("numba", "numpy", "np", Capabilities(
    fusion=True, compiled_kernels=True, einsum_paths=True, scalars_as_numpy=True, short_last_axis=16,
    gemv_column_sums=True), modules=("numba", "os"), keeps=numba_math.WHOLE, preamble=numba_math.THREADS)
BACKENDS = {b.name: b for b in (NUMPY, CUPY, NUMBA)}

# The code generator's own helpers. Each defines `_<name>`.
MACHINERY: dict[str, Helper] = {h.name: h for h in (
    Helper("quiet", '''def _quiet():
    """Silence floating-point warnings where inf/nan are expected and handled."""
    return xp.errstate(all="ignore")
'''),
    # concurrent.futures is imported when a loop first goes on threads: it pulls in logging, a
    # quarter of the time a cached module takes to load
    Helper("blocks", '''_BLOCK_BYTES = 1 << 19  # what one block of a fused loop touches (scratch, inputs, outputs): one core's L2
_MIN_ROWS = 4  # rows a block has at least: a row past _BLOCK_BYTES / 4 (cross_entropy over 32000 classes)
              # would make one-row blocks, whose ufunc calls cost more than the cache misses saved
_CHEAP_BLOCKS = 6  # loops of cheap ufuncs only (add, mul, ...) on threads: blocks this many times bigger
_PARALLEL = 1 << 18  # a fused loop over at least this many elements runs on threads...
_THREAD_BLOCK = 1 << 15  # ...if its blocks there have this many elements: in smaller ufunc calls, handing
                         # the GIL between threads costs more than the second core gives
_THREADS = int(os.environ.get("TAPELESS_THREADS", "0")) or min(os.cpu_count() or 1, 8)
_POOL = []


def _blocks(kernel, n, row_bytes, size, combine, grow=1, least=_MIN_ROWS):
    """Run kernel(lo, hi, rows) over rows [0, n) in blocks of about _BLOCK_BYTES (one row touches
    row_bytes), of at least `least` rows; when `size` (its element count) is large, in parts on _THREADS threads, with
    blocks up to `grow` times larger there; combine each part's partial reductions ("sum",
    "max" or "min")."""
    rows = max(least, _BLOCK_BYTES // max(1, row_bytes))
    per = -(-n // _THREADS)
    big = max(rows, min(grow * rows, per))  # block rows on threads
    if size >= _PARALLEL and n >= 2 * rows and _THREADS > 1 and big * (size // n) >= _THREAD_BLOCK:
        if not _POOL:
            import concurrent.futures

            _POOL.append(concurrent.futures.ThreadPoolExecutor(_THREADS - 1, "tapeless"))
        rows = big
        step = -(-per // rows) * rows  # whole blocks per thread
        ranges = [(lo, min(lo + step, n)) for lo in range(0, n, step)]
        futures = [_POOL[0].submit(contextvars.copy_context().run, kernel, lo, hi, rows) for lo, hi in ranges[1:]]
        parts = [kernel(*ranges[0], rows)] + [f.result() for f in futures]
    else:
        parts = [kernel(0, n, rows)]
    out = []
    for k, how in enumerate(combine):
        values = [p[k] for p in parts if p[k] is not None]
        if not values:
            raise ValueError(f"zero-size array to reduction operation {how} which has no identity")
        acc = values[0]
        for v in values[1:]:
            acc = acc + v if how == "sum" else (xp.maximum(acc, v) if how == "max" else xp.minimum(acc, v))
        out.append(acc[()] if getattr(acc, "ndim", None) == 0 else acc)
    return out
''', imports=("import contextvars", "import os")),
)}


def helpers() -> dict[str, Helper]:
    """Every helper by name: the machinery's and those the primitive records carry."""
    table = dict(MACHINERY)
    for prim in REGISTRY.values():
        for h in prim.helpers:
            if table.setdefault(h.name, h) is not h:
                raise AssertionError(f"two helpers named {h.name!r}")  # pragma: no cover - a bug in the table
    return table


def module_globals(backend: Backend) -> set[str]:
    """Every top-level name a generated module may define or import besides its functions:
    the helpers' own definitions and globals (_blocks, _BLOCK_BYTES, _POOL, ...) and the
    modules they import. A .tl name never takes one of these."""
    table = helpers()
    sources = [h.source for h in table.values()] + [backend.helper_source(h) for h in table.values()] \
        + list(backend.overrides.values())
    lines = [line for h in table.values() for line in h.imports] + list(backend.imports)
    return ({m.group(1) for src in sources for m in re.finditer(r"^(?:def |class )?(\w+)", src, re.M)}
            | {line.split()[1].split(".")[0] for line in lines} | {backend.alias} | set(backend.modules)
            | ({"math"} if backend.caps.compiled_kernels else set()))


def helper_closure(names) -> list[str]:
    """The helpers named plus everything they use, in a stable order."""
    table = helpers()
    out: list[str] = []

    def visit(n: str) -> None:
        if n in out:
            return
        for dep in table[n].uses:
            visit(dep)
        out.append(n)

    for n in sorted(names):
        visit(n)
    return out
