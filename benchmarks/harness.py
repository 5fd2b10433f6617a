"""Timing, peak-memory and agreement checks shared by every workload.

Methodology (also in README.md):
  * warm-up: each implementation is called until `warmup` seconds have passed (at least
    twice), which also absorbs one-time costs (jax tracing/compilation, first-touch page
    faults, numpy's allocation caches) and estimates the time of one call;
  * a sample is the mean of k back-to-back calls, k chosen so one sample lasts at least
    `min_sample` seconds (k = 1 for anything slower; W1 needs thousands of calls per sample
    to be above the resolution of time.perf_counter);
  * the implementations of a workload are timed *interleaved*, one sample of each per round,
    the order rotating every round, so that a burst of load from other processes hits every
    implementation alike rather than one of them;
  * the garbage collector is disabled while timing (gc.collect() before each round);
  * the report gives the median sample and the min..max range.
Peak memory is measured separately (never while timing): tracemalloc tracks every NumPy
data allocation; the peak of one call above what was allocated before it is what the call
needed at its worst moment, its results included. Torch and jax allocate outside Python's
allocator, so tracemalloc cannot see them: no memory figure for peers.
"""
from __future__ import annotations

import gc
import math
import statistics
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class Impl:
    """One implementation of a workload. `call()` is what is timed; `convert(result)` turns
    its result into [value, grad, ...] NumPy arrays for the agreement checks."""
    name: str
    kind: str                      # hand | tapeless | tapeless-alt | torch | jax
    call: Callable[[], Any]
    convert: Callable[[Any], list]
    memory: bool = True            # measure peak memory with tracemalloc
    note: str = ""
    # filled in by the harness
    check: str = ""                # "" not yet checked, "ok" or the failure
    max_err: float = float("nan")
    samples: list = field(default_factory=list)
    inner: int = 1
    peak_bytes: int | None = None

    @property
    def ok(self) -> bool:
        return self.check == "ok"

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")


@dataclass
class Settings:
    warmup: float = 0.3            # seconds of warm-up per implementation
    min_sample: float = 0.01       # seconds per sample at least
    rounds: int = 25               # samples per implementation
    budget: float = 25.0           # seconds of timing per workload at most (fewer rounds if needed)
    min_rounds: int = 5


QUICK = Settings(warmup=0.05, min_sample=0.002, rounds=5, budget=4.0, min_rounds=3)


# ------------------------------------------------------------------ agreement checks

def check_against(impl: Impl, reference: list, rtol: float, atol_frac: float, dtypes: list) -> None:
    """Compare impl's results with the float64 reference: same count, shapes and dtypes, and
    |got - ref| <= atol_frac * max|ref| + rtol * |ref| elementwise, output by output."""
    try:
        got = impl.convert(impl.call())
    except Exception as exc:  # noqa: BLE001 - a failing implementation is reported, not fatal
        impl.check = f"raised {type(exc).__name__}: {exc}"
        return
    if len(got) != len(reference):
        impl.check = f"returned {len(got)} results, expected {len(reference)}"
        return
    worst = 0.0
    for i, (g, r, dt) in enumerate(zip(got, reference, dtypes)):
        g = np.asarray(g)
        r = np.asarray(r)
        label = "value" if i == 0 else f"output {i}"
        if g.shape != r.shape:
            impl.check = f"{label}: shape {g.shape}, expected {r.shape}"
            return
        if dt is not None and g.dtype != np.dtype(dt):
            impl.check = f"{label}: dtype {g.dtype}, expected {np.dtype(dt)}"
            return
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        diff = np.abs(g.astype(np.float64) - r)
        bound = atol_frac * scale + rtol * np.abs(r)
        if not np.all(np.isfinite(g)) or not np.all(diff <= bound):
            k = int(np.argmax(diff - bound)) if r.size > 1 else 0
            impl.check = (f"{label} differs: max |diff| {float(np.max(diff)):.3g} "
                          f"(at flat index {k}: got {float(g.ravel()[k]):.7g}, expected {float(r.ravel()[k]):.7g}; "
                          f"tolerance rtol={rtol:g}, atol={atol_frac:g}*max|ref|)")
            return
        worst = max(worst, float(np.max(diff)) / scale if scale else float(np.max(diff)))
    impl.check = "ok"
    impl.max_err = worst


def recheck(impl: Impl, reference: list, rtol: float, atol_frac: float, dtypes: list) -> None:
    """Check again after timing: catches an implementation that mutates its inputs (the
    timed calls would then have computed something else than the checked one)."""
    if not impl.ok:
        return
    err = impl.max_err
    check_against(impl, reference, rtol, atol_frac, dtypes)
    if impl.ok:
        impl.max_err = max(err, impl.max_err)
    else:
        impl.check = "after timing: " + impl.check


# ------------------------------------------------------------------ timing

def _calls_per_sample(call, warmup: float, min_sample: float) -> int:
    n, t0 = 0, time.perf_counter()
    while True:
        call()
        n += 1
        elapsed = time.perf_counter() - t0
        if n >= 2 and elapsed >= warmup:
            break
    per_call = elapsed / n
    return max(1, math.ceil(min_sample / per_call)) if per_call < min_sample else 1


def _sample(call, k: int) -> float:
    t0 = time.perf_counter()
    for _ in range(k):
        call()
    return (time.perf_counter() - t0) / k


def time_interleaved(impls: list[Impl], s: Settings) -> None:
    impls = [i for i in impls if i.ok]
    if not impls:
        return
    for impl in impls:
        impl.inner = _calls_per_sample(impl.call, s.warmup, s.min_sample)
        impl.samples = []
    # one probe round decides how many rounds fit in the budget
    per_round = 0.0
    for impl in impls:
        per_round += _sample(impl.call, impl.inner) * impl.inner
    rounds = s.rounds
    if per_round * rounds > s.budget:
        rounds = max(s.min_rounds, int(s.budget / max(per_round, 1e-9)))
    was_enabled = gc.isenabled()
    try:
        for r in range(rounds):
            gc.collect()
            gc.disable()
            shift = r % len(impls)
            for impl in impls[shift:] + impls[:shift]:
                impl.samples.append(_sample(impl.call, impl.inner))
            if was_enabled:
                gc.enable()
    finally:
        if was_enabled:
            gc.enable()


# ------------------------------------------------------------------ peak memory

def peak_memory(call: Callable[[], Any], repeats: int = 2) -> int:
    """Peak traced bytes allocated by one call above the level before it (max over repeats)."""
    worst = 0
    for _ in range(repeats):
        gc.collect()
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
            result = call()
            _, peak = tracemalloc.get_traced_memory()
            del result
        finally:
            tracemalloc.stop()
        worst = max(worst, peak - base)
    return worst


# ------------------------------------------------------------------ formatting

def fmt_time(t: float) -> str:
    if t is None or not math.isfinite(t):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if t >= scale or unit == "ns":
            v = t / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{t:g} s"


def fmt_range(samples: list) -> str:
    if not samples:
        return "-"
    return f"{fmt_time(min(samples))} .. {fmt_time(max(samples))}"


def fmt_bytes(b: int | None) -> str:
    if b is None:
        return "-"
    if b >= 2**20:
        return f"{b / 2**20:.2f} MiB"
    if b >= 2**10:
        return f"{b / 2**10:.1f} KiB"
    return f"{b} B"


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None or not math.isfinite(r) else f"{r:.2f}"


def verdict(value: float | None, limit: float, strict: bool = False) -> str:
    """'met' / 'NOT met' for value <= limit (value < limit when strict)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    ok = value < limit if strict else value <= limit
    return "met" if ok else "NOT met"
