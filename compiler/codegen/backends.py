"""Backend name tables and the helper functions generated modules may contain.

Emission is written once, against the alias `xp`; a backend says what `xp` is
(the module and its alias) and supplies the few definitions that differ. The
helpers below are plain source text over `xp`, copied into a generated module
only when it uses them, so modules stay standalone (numpy or cupy, and the
standard library, nothing else).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backend:
    name: str
    module: str
    alias: str
    scalars_as_numpy: bool  # 0-d arguments become NumPy scalars (fast scalar arithmetic)
    imports: tuple[str, ...] = ()
    overrides: dict[str, str] = field(default_factory=dict)  # helper name -> backend-specific source
    # float32 ufuncs whose loop with a scalar operand is much slower than with an array one: in
    # fused loops their constant operand becomes a row (NumPy 2.4 on AVX2: maximum(x, 0) on 128K
    # elements 65-95 us, against a (1, 256) row of zeros 32-36 us; add or multiply: no difference)
    slow_scalar_ufuncs: frozenset = frozenset()
    # a reduction over only a last axis of at most this many elements runs down the columns of
    # a transposed copy (primitives/reduce.py); 0: never
    short_last_axis: int = 0
    gemv_column_sums: bool = False  # fused loops sum a block down its rows as ones @ block


NUMPY = Backend("numpy", "numpy", "np", True,
                slow_scalar_ufuncs=frozenset({"maximum", "minimum", "fmax", "fmin"}), short_last_axis=16,
                gemv_column_sums=True)
CUPY = Backend(
    "cupy", "cupy", "cp", False, imports=("import contextlib",),
    overrides={
        "quiet": '''def _quiet():
    """CuPy never warns about floating-point values; nothing to silence."""
    return contextlib.nullcontext()
''',
        # CuPy's take wraps or clips an index out of range, never raises: both bounds checked first
        "labels_onehot": '''def _labels_onehot(labels, c):
    """The bool one-hot rows of cross_entropy's labels, which must lie in [0, c)."""
    _check_labels(labels, c)
    return labels[..., None] == xp.arange(c)
''',
    },
)
BACKENDS = {b.name: b for b in (NUMPY, CUPY)}

# Helper sources: name -> (source over `xp`, helpers it uses). Each defines `_<name>`.
HELPERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "quiet": ('''def _quiet():
    """Silence floating-point warnings where inf/nan are expected and handled."""
    return xp.errstate(all="ignore")
''', ()),
    "sigmoid": ('''def _sigmoid(x):
    """1 / (1 + exp(-x)); exp overflows to inf at very negative x, giving exactly 0."""
    with _quiet():
        return 1 / (1 + xp.exp(-x))
''', ("quiet",)),
    "logsumexp": ('''def _logsumexp(x, axis, keepdims):
    """log(sum(exp(x))) shifted by the max; a slice of all -inf gives -inf, not nan."""
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    with _quiet():
        out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = xp.squeeze(out, axis=axis)
    return out[()]
''', ("quiet",)),
    "softmax": ('''def _softmax(x, axis):
    """exp(x - max) / sum(exp(x - max)), in place on one temporary; shifted by 0 where the max
    is not finite, as _logsumexp (the expanded form at -O1 computes the same)."""
    m = xp.max(x, axis=axis, keepdims=True)
    e = x - xp.where(xp.isfinite(m), m, 0)
    xp.exp(e, out=e)
    e /= xp.sum(e, axis=axis, keepdims=True)
    return e
''', ()),
    "log_softmax": ('''def _log_softmax(x, axis):
    """x - logsumexp(x) along axis."""
    return x - _logsumexp(x, axis, True)
''', ("logsumexp",)),
    "bce_with_logits": ('''def _bce_with_logits(z, y):
    """Binary cross-entropy of logits z and targets y; no overflow at |z| = 1000."""
    return xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))
''', ()),
    "binary_cross_entropy": ('''def _binary_cross_entropy(p, y):
    """-(y log p + (1 - y) log(1 - p)), each log clamped at -100 as in PyTorch."""
    with _quiet():
        log_p = xp.maximum(xp.log(p), -100)
        log_q = xp.maximum(xp.log1p(-p), -100)
    return -(y * log_p + (1 - y) * log_q)
''', ("quiet",)),
    "cross_entropy": ('''def _cross_entropy(logits, labels):
    """logsumexp(logits) - logits[label] over the last axis; labels must lie in [0, C)."""
    _check_labels(labels, logits.shape[-1])
    picked = xp.take_along_axis(logits, xp.asarray(labels)[..., None], axis=-1)[..., 0]
    return _logsumexp(logits, -1, False) - picked
''', ("logsumexp", "check_labels")),
    "labels_onehot": ('''def _labels_onehot(labels, c):
    """The bool one-hot rows of cross_entropy's labels, which must lie in [0, c): rows of an
    identity matrix, or for many classes a scatter into zeros (both raise IndexError for a
    label >= c; a negative one is checked first). 2-6x faster than comparing with arange(c)."""
    if labels.size and labels.min() < 0:
        _check_labels(labels, c)
    try:
        if c <= 256:
            return xp.eye(c, dtype=xp.bool_).take(labels, axis=0)
        out = xp.zeros((labels.size, c), dtype=xp.bool_)
        out[xp.arange(labels.size), labels.reshape(-1)] = True
        return out.reshape(*labels.shape, c)
    except IndexError:
        _check_labels(labels, c)
        raise
''', ("check_labels",)),
    "check_labels": ('''def _check_labels(labels, c):
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= c):
        raise ValueError(f"cross_entropy: labels must lie in [0, {c}), got values from "
                         f"{int(labels.min())} to {int(labels.max())}")
''', ()),
    "blocks": ('''_BLOCK_BYTES = 1 << 19  # what one block of a fused loop touches (scratch, inputs, outputs): one core's L2
_CHEAP_BLOCKS = 6  # loops of cheap ufuncs only (add, mul, ...) on threads: blocks this many times bigger
_PARALLEL = 1 << 18  # a fused loop over at least this many elements runs on threads...
_THREAD_BLOCK = 1 << 15  # ...if its blocks there have this many elements: in smaller ufunc calls, handing
                         # the GIL between threads costs more than the second core gives
_THREADS = int(os.environ.get("TAPELESS_THREADS", "0")) or min(os.cpu_count() or 1, 8)
_POOL = []


def _blocks(kernel, n, row_bytes, size, combine, grow=1):
    """Run kernel(lo, hi, rows) over rows [0, n) in blocks of about _BLOCK_BYTES (one row touches
    row_bytes); when `size` (its element count) is large, in parts on _THREADS threads, with
    blocks up to `grow` times larger there; combine each part's partial reductions ("sum",
    "max" or "min")."""
    rows = max(1, _BLOCK_BYTES // max(1, row_bytes))
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
''', ()),
    "einsum_path": ('''_PATHS = {}


def _einsum_path(spec, *operands):
    """The contraction order for these shapes, found once (np.einsum_path) and cached."""
    key = (spec,) + tuple(o.shape for o in operands)
    path = _PATHS.get(key)
    if path is None:
        path = _PATHS[key] = xp.einsum_path(spec, *operands, optimize="optimal")[0]
    return path
''', ()),
    "index_grad": ('''def _index_grad(g, shape, index):
    """Zeros of `shape` with g written at `index` (the transpose of basic indexing)."""
    out = xp.zeros(shape, dtype=g.dtype)
    out[index] = g
    return out
''', ()),
    "take_grad": ('''def _take_grad(g, idx, axis, shape):
    """Zeros of `shape` with g added at idx along axis; repeated indices accumulate."""
    out = xp.zeros(shape, dtype=g.dtype)
    xp.add.at(out, (slice(None),) * axis + (idx,), g)
    return out
''', ()),
    "take_along_axis_grad": ('''def _take_along_axis_grad(g, idx, axis, shape):
    """The transpose of take_along_axis: g added at idx along axis."""
    out = xp.zeros(shape, dtype=g.dtype)
    idx = xp.broadcast_to(idx, g.shape)
    index = tuple(
        idx if a == axis else xp.arange(n).reshape([n if b == a else 1 for b in range(g.ndim)])
        for a, n in enumerate(g.shape)
    )
    xp.add.at(out, index, g)
    return out
''', ()),
}


# standard-library modules a helper needs
# concurrent.futures is imported when a loop first goes on threads: it pulls in logging, a
# quarter of the time a cached module takes to load
HELPER_IMPORTS = {"blocks": ("import contextvars", "import os")}


def module_globals(backend: Backend) -> set[str]:
    """Every top-level name a generated module may define or import besides its functions:
    the helpers' own definitions and globals (_blocks, _BLOCK_BYTES, _POOL, ...) and the
    modules they import. A .tl name never takes one of these."""
    sources = [src for src, _ in HELPERS.values()] + list(backend.overrides.values())
    lines = [line for imports in HELPER_IMPORTS.values() for line in imports] + list(backend.imports)
    return ({m.group(1) for src in sources for m in re.finditer(r"^(?:def |class )?(\w+)", src, re.M)}
            | {line.split()[1].split(".")[0] for line in lines} | {backend.alias})


def helper_source(name: str, backend: Backend) -> str:
    src = backend.overrides.get(name) or HELPERS[name][0]
    return re.sub(r"\bxp\.", backend.alias + ".", src)


def helper_closure(names) -> list[str]:
    """The helpers named plus everything they use, in a stable order."""
    out: list[str] = []

    def visit(n: str) -> None:
        if n in out:
            return
        for dep in HELPERS[n][1]:
            visit(dep)
        out.append(n)

    for n in sorted(names):
        visit(n)
    return out
