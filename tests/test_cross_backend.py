"""Every backend that can run here computes what the NumPy backend computes at -O0 (no
optimiser, no fused loops), on random programs (tests/random_programs.py): values and
gradients, to 1e-6 relative in f32 and 1e-12 in f64 (issue 18, item 4).

The comparison is scale-aware, entry by entry: |got - want| <= rtol * max(|want|, scale) (rtol
widened in f32 for sums over many rows: `rtol`), where
the scale is the magnitude of the values summed into that entry: for the loss, the running
error magnitude of its body (first-order propagation of |value| through |local derivatives|),
for a gradient entry, the sum over paths of the products of the magnitudes of the terms of
each local derivative (the gradient of such a magnitude with respect to the inputs'). Both come from a `scale` fn the
generator writes beside the program (tests/random_programs.py), run in f64 at -O0. The
reference is run once per program.

A backend is one `Runner` line in BACKENDS_HERE; one that cannot run here skips with its
reason. Settings are fixed (derandomize): a failure names its program, and reruns the same.
"""
from __future__ import annotations

import importlib
import math
import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings

import cupy_standin
from random_programs import Program, programs
from tapeless.compiler import compile_source
from tapeless.compiler.codegen.backends import BACKENDS
from test_cupy_backend import import_cupy_module
from util import compile_module, force_tiny_blocks

RTOL = {"float32": 1e-6, "float64": 1e-12}


def rtol(prog: Program) -> float:
    """RTOL, widened where the rows are too many for it: a sum over N rows (a reduction along
    axis 0, or the gradient of a value broadcast over rows) is accumulated one row after another
    (NumPy's pairwise sum is along the contiguous axis only), and its rounding may grow as N unit
    roundoffs (Higham's gamma_N: with equal terms the errors do not cancel), which the scale (one
    rounding per op) does not count. In f32 at N = 2048 that is 1.2e-4: d/dy of
    sum(x + y + x) + mean(x + y) is 2048.125 per entry, and -O0's row-after-row sum gives 2048.0
    (each 1/16384 below half an ulp of the running sum). f64 is unchanged (N u << 1e-12)."""
    u = np.finfo(prog.dtype).eps / 2
    return max(RTOL[prog.dtype], prog.n * u)


EXAMPLES = 60  # per backend
_dir = Path(tempfile.mkdtemp(prefix="tl_cross_"))

# On the NumPy stand-in, masked branches of where (log of a negative) may warn, as in test_cupy_backend.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@dataclass(frozen=True)
class Runner:
    name: str
    load: Callable[[str], object]  # .tl text -> a module with `loss` and `loss_grad` over NumPy arrays
    missing: Callable[[], str | None] = lambda: None  # why it cannot run here (None: it can)


def _numpy(opt_level: int, tiny_blocks: bool = False):
    def load(text):
        m = compile_module(text, _dir, name="cross", opt_level=opt_level)
        if tiny_blocks:  # blocks of a few rows on 2 threads: partial blocks, per-thread partial sums
            force_tiny_blocks(m, block_bytes=1 << 13, threads=2)
        return m
    return load


def _cupy(text):
    return import_cupy_module(compile_source(text, backend="cupy", path="cross.tl"), _dir, "standin")


def _numba(text):
    path = _dir / f"nb_{abs(hash(text))}.py"
    path.write_text(compile_source(text, backend="numba", path="cross.tl"))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _needs_backend(name: str, module: str | None = None):
    def missing():
        if name not in BACKENDS:
            return f"the compiler has no {name!r} backend yet"
        if module is not None and importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
        return None
    return missing


def _standin_kernels_missing():
    if not hasattr(cupy_standin.make_standin(), "ElementwiseKernel"):
        return "the CuPy stand-in has no ElementwiseKernel (compiled through g++) yet"
    return None


REFERENCE = Runner("numpy-O0", _numpy(0))
BACKENDS_HERE = [
    Runner("numpy-O1", _numpy(1)),
    Runner("numpy-O1-threads", _numpy(1, tiny_blocks=True)),
    Runner("numpy-O2", _numpy(2)),
    Runner("cupy-standin", _cupy),
    Runner("numba", _numba, _needs_backend("numba", "numba")),
    Runner("cupy-kernels", _cupy, _standin_kernels_missing),
]


def _params(runners=BACKENDS_HERE):
    for r in runners:
        reason = r.missing()
        yield pytest.param(r, id=r.name, marks=[pytest.mark.skip(reason=reason)] if reason else [])


_reference: dict[Program, tuple] = {}  # program -> (value, gradients, loss scale)


def reference(prog: Program):
    if prog not in _reference:
        m = REFERENCE.load(prog.source)
        args = prog.inputs()
        scale_mod = compile_module(prog.scale_source, _dir, name="scale", opt_level=0, float64=True)
        wide = [np.asarray(a, np.float64) if a.dtype.kind == "f" else a for a in args]  # labels stay i64
        mags = [np.abs(a) for a in wide[:len(prog.params)]]
        scales = (scale_mod.scale(*wide, *mags),) + scale_mod.gscale_grad(*wide, *mags)[1:]
        _reference.clear()  # one program at a time: the runners are parametrized outside the examples
        _reference[prog] = (m.loss(*args), m.loss_grad(*args), scales)
    return _reference[prog]


def _worst(got, want, scale, tol) -> float:
    """max |got - want| / (tol * max(|want|, scale)): at most 1 passes."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.all(np.isfinite(want)), "the reference is not finite: the generator made an unsafe program"
    bound = tol * np.maximum(np.abs(want), scale)
    return float(np.max(np.abs(got - want) / np.where(bound > 0, bound, np.finfo(np.float64).tiny)))


_wide: dict[Program, tuple] = {}  # program -> (value, gradients) of its float64 build


def wide_reference(prog: Program):
    """The f32 program built in f64 (-O0) and run on the same inputs, widened: what f32 rounds."""
    if prog not in _wide:
        m = REFERENCE.load(prog.float64_source())
        args = [np.asarray(a, np.float64) if a.dtype.kind == "f" else a for a in prog.inputs()]
        _wide.clear()
        _wide[prog] = (m.loss(*args), m.loss_grad(*args))
    return _wide[prog]


def compare(prog: Program, runner: Runner, wide: bool = False) -> dict[str, float]:
    """The worst ratio of each output (value, then the gradients): at most 1 passes. Against
    the -O0 build of the program, or with `wide`, its float64 build (at the program's tolerance)."""
    value, grads, scales = reference(prog)
    if wide:
        value, grads = wide_reference(prog)
    loss_scale = float(scales[0])
    m = runner.load(prog.source)
    args = prog.inputs()
    got_value, got_grads = m.loss(*args), m.loss_grad(*args)
    tol = rtol(prog)
    assert np.asarray(got_value).dtype == np.dtype(prog.dtype)
    ratios = {"loss": _worst(got_value, value, loss_scale, tol)}
    # loss_grad returns (value, d_wrt...) as the directive lists them
    got_all = got_grads if isinstance(got_grads, tuple) else (got_grads,)
    want_all = grads if isinstance(grads, tuple) else (grads,)
    assert len(got_all) == len(want_all) == 1 + len(prog.wrt)
    ratios["loss_grad value"] = _worst(got_all[0], want_all[0], loss_scale, tol)
    for k, name in enumerate(prog.wrt, 1):
        assert np.asarray(got_all[k]).dtype == np.dtype(prog.dtype), name
        ratios[f"d_{name}"] = _worst(got_all[k], want_all[k], scales[k], tol)
    return ratios


# compiled backends compile every kernel of every program (numba: about a second each; the CuPy
# kernels through g++ here): fewer examples
SLOW = {"numba", "cupy-kernels"}
SLOW_EXAMPLES = 3


def _fast(runners):
    return [p for p in _params(runners) if p.id not in SLOW]


def _slow(runners):
    return [p for p in _params(runners) if p.id in SLOW]


@pytest.mark.parametrize("runner", _fast(BACKENDS_HERE))
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(prog=programs())
def test_backend_matches_numpy_without_optimisation(runner, prog):
    note(prog.source)
    ratios = compare(prog, runner)
    bad = {k: v for k, v in ratios.items() if not v <= 1}
    assert not bad, (f"{runner.name} differs from {REFERENCE.name} beyond {rtol(prog):.2g} relative "
                     f"(ratio to the tolerance per output: {bad}) on\n{prog!r}")


@pytest.mark.parametrize("runner", _slow(BACKENDS_HERE))
@settings(max_examples=SLOW_EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(prog=programs())
def test_compiled_backend_matches_numpy_without_optimisation(runner, prog):
    test_backend_matches_numpy_without_optimisation.hypothesis.inner_test(runner, prog)


@pytest.mark.parametrize("runner", _fast([REFERENCE] + BACKENDS_HERE))
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(prog=programs(dtypes=("f32",)))
def test_f32_matches_the_float64_build(runner, prog):
    """Against the same program built in f64, -O0 included: a fault every level shares that
    f32 rounding does not explain (an f32-only path, a wrong stable form) fails here."""
    note(prog.source)
    ratios = compare(prog, runner, wide=True)
    bad = {k: v for k, v in ratios.items() if not v <= 1}
    assert not bad, (f"{runner.name} differs from the float64 build beyond {rtol(prog):.2g} relative "
                     f"(ratio to the tolerance per output: {bad}) on\n{prog!r}")


@pytest.mark.parametrize("runner", _slow(BACKENDS_HERE))
@settings(max_examples=SLOW_EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(prog=programs(dtypes=("f32",)))
def test_compiled_f32_matches_the_float64_build(runner, prog):
    test_f32_matches_the_float64_build.hypothesis.inner_test(runner, prog)
