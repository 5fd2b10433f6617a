"""dask_grad: a generated `grad` function over dask arrays chunked along the batch, shard by shard.

    import dask.array as da
    from tapeless.runtime import load, dask_grad
    m = load("logreg.tl")                         # fn logreg(x: f32[N, D], y: f32[N], w: f32[D], ...)
    x = da.from_zarr(...)                         # chunked along N: [N, D] in blocks of rows
    loss, d_w = dask_grad(m.logreg_grad, x, y, w, lam)   # NumPy results, as m.logreg_grad gives

The batch symbol S is the size symbol whose axis the dask arguments are chunked along (or
`batch="N"`). The compiler has recorded whether the function's value is N^p times a sum over
S's axis of per-example terms (`__tapeless__[F]["batch"]`, compiler/autodiff/batch.py); only
then does it split: each shard k (n_k examples) is one task calling the grad function on its
blocks, its results weighted by (n_k / N)^(-p) (1 for a sum, n_k / N for a mean) and added by
a tree reduction in float64; the sum is cast to the function's own dtypes. A value the examples
meet in (a batch norm, a max over the batch) is refused with the compiler's reason, naming the
operation and its place in the `.tl` file.

Arguments: dask arrays with S are split along it (every one with the same chunks; their other
axes are joined into one chunk); NumPy arrays with S are cut to the same chunks; the others
(batch-free: weights, scalars) go to every shard once each (one key in the graph, not a copy
per task). A gradient with respect to a parameter with S is per example: its weighted blocks
are put back together along S. Results are computed with whatever scheduler is active (the
threaded one, or a distributed Client); compute=False gives dask arrays instead.

Nothing here imports dask until dask_grad is called.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .portable_function import PortableFunction
from .signature import derivative_entry, dim_value, dims_text, dtype_of


def dask_grad(fn: Callable, *args, batch: str | None = None, compute: bool = True, split_every: int = 8):
    """fn(*args) (a generated `grad` function: (value, d_a, d_b, ...)) over dask arrays chunked
    along one size symbol's axis, one task per chunk, the results combined by a tree reduction
    of fan-in `split_every`. NumPy results (compute=True) or dask arrays (compute=False)."""
    import dask
    import dask.array as da

    name, entry = derivative_entry(fn, "dask_grad", ("grad",))
    who = f"dask_grad({name})"
    params, in_types = entry["params"], entry["in_types"]
    if len(args) != len(params):
        raise TypeError(f"{who} takes {len(params)} arguments ({', '.join(params)}), got {len(args)}")
    if not isinstance(split_every, int) or split_every < 2:
        raise ValueError(f"{who}: split_every must be an int of at least 2, got {split_every!r}")
    lazy = [i for i, a in enumerate(args) if isinstance(a, da.Array)]
    if not lazy:
        raise TypeError(f"{who}: no argument is a dask array; call {name} itself on NumPy arrays")
    s = _batch_symbol(who, params, in_types, args, lazy, batch)
    p = _power(who, fn, entry, s)
    plan = _Plan(who, params, in_types, args, s)
    call = dask.delayed(PortableFunction(fn), pure=True)  # one key: the function travels once a worker
    free = {i: (a if isinstance(a, (int, float, complex, bool, np.generic)) else dask.delayed(a, pure=True))
            for i, a in enumerate(args) if i not in plan.axis}
    out_types = entry["out_types"]
    per_example = [j for j, (_, dims) in enumerate(out_types) if s is not None and s in dims]
    shards = []
    for k, n in enumerate(plan.chunks):
        weight = (n / plan.total) ** (-p) if s is not None else 1.0
        block_args = [plan.block(i, k) if i in plan.axis else free[i] for i in range(len(args))]
        shards.append(dask.delayed(_shard, pure=True, nout=2)(call, weight, tuple(per_example), *block_args))
    level = [reduced for reduced, _ in shards]
    while len(level) > 1:
        level = [dask.delayed(_add, pure=True)(*level[i:i + split_every]) for i in range(0, len(level), split_every)]
    dtypes = [dtype_of(t) for t in out_types]
    summed = [j for j in range(len(out_types)) if j not in per_example]
    total = dask.delayed(_cast, pure=True)(level[0], tuple(dtypes[j] for j in summed))
    sizes = {s: plan.total} if s is not None else {}
    sizes.update(plan.sizes)
    results: list = [None] * len(out_types)
    for m, j in enumerate(summed):
        shape = tuple(dim_value(d, sizes) for d in out_types[j][1])
        results[j] = da.from_delayed(total[m], shape=shape, dtype=dtypes[j])
    for m, j in enumerate(per_example):
        dims = out_types[j][1]
        axis = dims.index(s)
        blocks = [da.from_delayed(shard[m], dtype=dtypes[j],
                                  shape=tuple(n if a == axis else dim_value(d, sizes) for a, d in enumerate(dims)))
                  for (_, shard), n in zip(shards, plan.chunks)]
        results[j] = blocks[0] if len(blocks) == 1 else da.concatenate(blocks, axis=axis)
    if not compute:
        return tuple(results)
    values = dask.compute(*results)
    return tuple(v[()] if np.ndim(v) == 0 else v for v in values)  # (scalars as the function gives them)


# ---- what runs in the tasks ---------------------------------------------------------------------------
def _shard(call, weight: float, per_example: tuple, *args):
    """One shard: the grad function on its blocks; (the weighted outputs summed over shards, in
    float64; the weighted per-example gradients, in their own dtype)."""
    out = call(*args)
    summed = tuple(np.asarray(o, dtype=np.float64) * weight for j, o in enumerate(out) if j not in per_example)
    blocks = tuple(_scaled(out[j], weight) for j in per_example)
    return summed, blocks


def _scaled(a, weight: float):
    a = np.asarray(a)
    return a if weight == 1.0 else (a * weight).astype(a.dtype, copy=False)


def _add(*parts):
    return tuple(sum(values[1:], values[0].copy()) for values in zip(*parts))


def _cast(parts, dtypes):
    return tuple(np.asarray(v, dtype=dt) for v, dt in zip(parts, dtypes))


# ---- the batch, the chunks -----------------------------------------------------------------------------
def _batch_symbol(who, params, in_types, args, lazy, batch):
    """The size symbol whose axis the dask arguments are split along (`batch` if given)."""
    split: dict[str, list[str]] = {}
    for i in lazy:
        dims, x = in_types[i][1], args[i]
        if x.ndim != len(dims):
            raise ValueError(f"{who}: argument {params[i]!r} should have rank {len(dims)} "
                             f"({dims_text(dims)}), got shape {x.shape}")
        for a, c in enumerate(x.chunks):
            if len(c) > 1 and dims[a] != batch:
                if not isinstance(dims[a], str):
                    raise ValueError(f"{who}: argument {params[i]!r} is chunked along axis {a}, of size "
                                     f"{dims_text([dims[a]])} in {dims_text(dims)}, not a size symbol's: chunk "
                                     f"the arguments along the batch axis only")
                split.setdefault(dims[a], []).append(f"{params[i]} axis {a}")
    symbols = {d for _, dims in in_types for d in dims if isinstance(d, str)}
    if batch is not None:
        if batch not in symbols:
            raise ValueError(f"{who}: batch={batch!r} is not a size symbol of its parameters "
                             f"({', '.join(sorted(symbols)) or 'none'})")
        return batch
    if len(split) > 1:
        where = "; ".join(f"{sym} ({', '.join(at)})" for sym, at in sorted(split.items()))
        raise ValueError(f"{who}: the dask arguments are chunked along the axes of several size symbols: "
                         f"{where}; chunk them along one (the batch), or pass batch='...'")
    return next(iter(split), None)  # (None: nothing is split: one shard)


def _power(who, fn, entry, s):
    """p in F = N^p sum_i g_i, as the compiler recorded it; ValueError with its reason otherwise."""
    if s is None:
        return 0
    of = entry["of"]
    table = fn.__globals__["__tapeless__"]
    verdicts = table.get(of, {}).get("batch")
    if verdicts is None:
        raise ValueError(f"{who}: the module records no batch analysis of {of} (compiled by an older "
                         f"tapeless?); compile it again")
    kind, detail = verdicts[s]
    if kind not in ("mean", "total"):
        raise ValueError(f"{who}: {of}'s value does not split over the examples along {s}: {detail}")
    return detail


class _Plan:
    """Where each argument with S has it, S's chunks (equal in every dask argument), and how to
    take shard k of an argument."""

    def __init__(self, who, params, in_types, args, s):
        import dask.array as da

        self.args = list(args)
        self.axis: dict[int, int] = {}  # argument -> its axis of S
        self.sizes: dict[str, int] = {}  # the other symbols, from the arguments' shapes
        chunks, first = None, None
        for i, ((_, dims), a) in enumerate(zip(in_types, args)):
            shape = getattr(a, "shape", ())
            if len(shape) == len(dims):
                for d, n in zip(dims, shape):
                    if isinstance(d, str) and d != s:
                        self.sizes.setdefault(d, int(n))
            if s is None or s not in dims:
                continue
            axis = dims.index(s)
            self.axis[i] = axis
            if isinstance(a, da.Array):
                if any(np.isnan(c) for c in a.chunks[axis]):
                    raise ValueError(f"{who}: argument {params[i]!r} has chunks of unknown size along {s}; "
                                     f"call .compute_chunk_sizes() on it first")
                others = {b: -1 for b in range(a.ndim) if b != axis and len(a.chunks[b]) > 1}
                if others:  # (only with batch=: the other axes whole, one block per shard)
                    self.args[i] = a = a.rechunk(others)
                if chunks is None:
                    chunks, first = tuple(int(c) for c in a.chunks[axis]), params[i]
                elif tuple(a.chunks[axis]) != chunks:
                    raise ValueError(f"{who}: arguments {first!r} and {params[i]!r} have different chunks along "
                                     f"{s}: {chunks} and {tuple(a.chunks[axis])}; rechunk one like the other, "
                                     f"e.g. {params[i]}.rechunk({{{axis}: {first}.chunks[...]}})")
        if chunks is None:  # nothing split along S (batch= names a symbol only NumPy arguments have)
            n = next(np.shape(args[i])[ax] for i, ax in self.axis.items()) if self.axis else 1
            chunks = (n,)
        self.chunks = chunks
        self.total = sum(chunks)
        self.starts = np.concatenate([[0], np.cumsum(chunks)]).astype(int).tolist()
        for i, axis in self.axis.items():
            a = self.args[i]
            if a.ndim != len(in_types[i][1]):
                raise ValueError(f"{who}: argument {params[i]!r} should have rank {len(in_types[i][1])} "
                                 f"({dims_text(in_types[i][1])}), got shape {a.shape}")
            if a.shape[axis] != self.total:
                raise ValueError(f"{who}: argument {params[i]!r} has {s} = {a.shape[axis]} along axis {axis}, "
                                 f"but the dask arguments have {s} = {self.total}")
            if not isinstance(a, da.Array):
                self.args[i] = np.asarray(a)
        self._delayed: dict[int, object] = {}

    def block(self, i: int, k: int):
        """Shard k of argument i: a dask array's block (a key of its graph), or a NumPy slice."""
        import dask

        a, axis = self.args[i], self.axis[i]
        if isinstance(a, np.ndarray):
            index = tuple(slice(self.starts[k], self.starts[k + 1]) if b == axis else slice(None)
                          for b in range(a.ndim))
            return dask.delayed(a[index], pure=True)
        if i not in self._delayed:
            # (graph not optimised here: a block two arguments share, x's and the labels made from
            # it, stays one task computed once)
            self._delayed[i] = a.to_delayed(optimize_graph=False)
        blocks = self._delayed[i]
        return blocks[tuple(k if b == axis else 0 for b in range(a.ndim))]
