"""The CuPy backend: generated modules import only `cupy` (and the standard library) and
compute what the NumPy backend computes. Without a GPU they run against a NumPy-backed
stand-in offering only the names CuPy has (tests/cupy_standin.py); with a GPU the same
tests run on real CuPy."""
from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
import sys

import numpy as np
import pytest

from catalogue import CASES
from corpus import PROGRAMS, inputs_for
from cupy_standin import make_special_standin, make_standin, needs_kernels
from tapeless.compiler import compile_source

_count = itertools.count()
# CuPy never warns about floating-point values, so its modules do not silence NumPy's
# warnings: on the NumPy stand-in, masked branches (sqrt of a negative) do warn.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _real_cupy():
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:  # no cupy, no driver, no device
        return None
    return None


REAL = _real_cupy()
BACKENDS = ["standin"] + (["gpu"] if REAL is not None else [])


def import_cupy_module(text: str, tmp_path, which: str):
    if which == "standin" and needs_kernels(text):
        pytest.skip(needs_kernels(text))
    path = tmp_path / f"cp_{next(_count)}.py"
    path.write_text(text)
    names = ("cupy", "cupyx", "cupyx.scipy", "cupyx.scipy.special")
    saved = {n: sys.modules.get(n) for n in names}
    sys.modules["cupy"] = make_standin() if which == "standin" else REAL
    if which == "standin":
        sys.modules.update(make_special_standin())
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
    return mod


def _to_device(x, which):
    return REAL.asarray(x) if which == "gpu" else x


def _to_host(x, which):
    if isinstance(x, tuple):
        return tuple(_to_host(v, which) for v in x)
    return REAL.asnumpy(x) if which == "gpu" else np.asarray(x)


def test_gpu_tests_skip_with_a_reason_when_there_is_no_gpu():
    if REAL is None:
        pytest.skip("no CUDA device or no cupy installed: the CuPy backend runs against the NumPy stand-in only")


@pytest.mark.parametrize("which", BACKENDS)
@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_corpus_on_cupy_matches_numpy(path, which, tmp_path, tl):
    text = path.read_text()
    numpy_mod = tl(text, path=path.name)
    source = compile_source(text, backend="cupy", path=path.name)
    imports = {line for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"import cupy as cp", "import contextlib"}, imports
    cupy_mod = import_cupy_module(source, tmp_path, which)
    for name, info in numpy_mod.__tapeless__.items():
        if info["kind"] not in ("fn", "grad", "vjp"):
            continue
        base = info.get("of", name)
        args = inputs_for(numpy_mod, base, text)
        if info["kind"] == "vjp":
            outs = numpy_mod.__dict__[base](*args)
            outs = outs if isinstance(outs, tuple) else (outs,)
            args = args + [np.ones_like(np.asarray(o)) for o in outs]
        want = getattr(numpy_mod, name)(*args)
        got = _to_host(getattr(cupy_mod, name)(*[_to_device(a, which) for a in args]), which)
        want = want if isinstance(want, tuple) else (want,)
        got = got if isinstance(got, tuple) else (got,)
        for w, g in zip(want, got):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_builtin_on_the_standin(case, tmp_path, tl):
    m_np = tl(case.source())
    m_cp = import_cupy_module(compile_source(case.source(), backend="cupy"), tmp_path, "standin")
    inputs = list(case.inputs().values())
    np.testing.assert_allclose(np.asarray(m_cp.f(*inputs)), np.asarray(m_np.f(*inputs)), rtol=1e-12, atol=1e-12)
    if case.grad_params():
        outs = m_np.f(*inputs)
        cts = [np.ones_like(np.asarray(o)) for o in (outs if isinstance(outs, tuple) else (outs,))]
        for a, b in zip(m_cp.f_vjp(*inputs, *cts), m_np.f_vjp(*inputs, *cts)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)


def test_logcumsumexp_without_accumulate_matches_numpy_at_extremes(tmp_path, tl):
    """CuPy has no logaddexp.accumulate: its helper steps one logaddexp per position, along
    either axis; at +-1000 and with -inf prefixes it gives what NumPy's accumulate gives."""
    src = ("fn f(x: f64[3, 4]) -> f64[3, 4] {\n    return logcumsumexp(x, axis=1) + logcumsumexp(x, axis=0)\n}\n"
           "vjp f wrt x\n")
    m_np = tl(src)
    m_cp = import_cupy_module(compile_source(src, backend="cupy"), tmp_path, "standin")
    assert ".accumulate(" not in compile_source(src, backend="cupy")
    x = np.array([[1000.0, -1000.0, 999.0, 0.0], [-np.inf, -np.inf, 3.0, -np.inf], [-800.0, -700.0, 700.0, 2.0]])
    want = m_np.f(x)
    np.testing.assert_array_equal(np.isfinite(m_cp.f(x)), np.isfinite(want))
    np.testing.assert_allclose(m_cp.f(x), want, rtol=1e-15)
    ct = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_allclose(m_cp.f_vjp(x, ct)[1], m_np.f_vjp(x, ct)[1], rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("which", BACKENDS)
@pytest.mark.parametrize("opt_level", [1, 2])
def test_loops_on_cupy_match_numpy(which, opt_level, tmp_path, tl):
    """A loop, its gradient (stacks, in-place updates, -O2's checkpoints), its JVP and HVP, and a
    ys[t] collection use only names CuPy has (tests/cases/loops/rnn.tl, collect.tl)."""
    root = Path(__file__).resolve().parent / "cases" / "loops"
    rng = np.random.default_rng(0)
    x, h0 = rng.standard_normal((4, 2, 3)), rng.standard_normal((2, 5))
    w, u = 0.5 * rng.standard_normal((3, 5)), 0.5 * rng.standard_normal((5, 5))
    t_h0, t_w, t_u = (rng.standard_normal(a.shape) for a in (h0, w, u))
    ct = rng.standard_normal((4, 2, 5))
    calls = {"rnn.tl": [("rnn_grad", (x, h0, w, u)), ("rnn_jvp", (x, h0, w, u, t_h0, t_w, t_u)),
                        ("rnn_hvp", (x, h0, w, u, t_w, t_u))],
             "collect.tl": [("rnn_seq", (x, h0, w, u)), ("rnn_seq_vjp", (x, h0, w, u, ct))]}
    for name, fns in calls.items():
        src = (root / name).read_text()
        np_mod = tl(src, opt_level=opt_level)
        cp_mod = import_cupy_module(compile_source(src, backend="cupy", opt_level=opt_level), tmp_path, which)
        for fn, args in fns:
            want = getattr(np_mod, fn)(*args)
            got = _to_host(getattr(cp_mod, fn)(*[_to_device(a, which) for a in args]), which)
            for g, wv in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
                np.testing.assert_allclose(np.asarray(g), np.asarray(wv), rtol=1e-12, atol=1e-12, err_msg=f"{name} {fn}")
