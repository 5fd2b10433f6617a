"""--backend numba: the same values as the NumPy backend (1e-6 relative in f32, 1e-12 in f64)
for the corpus, with out= accumulation and symbolic sizes; the same bits for any thread
count; modules importing only numpy and numba (and math); kernels written from the Program.

numba's JIT is slow to start: kernels are cached in one directory for the session
(NUMBA_CACHE_DIR, set before numba is imported), and each program's functions are called once.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="tapeless-numba-tests-"))
numba = pytest.importorskip("numba", reason="numba is not installed (pip install tapeless[numba])")

from corpus import PROGRAMS, inputs_for  # noqa: E402
from tapeless.compiler import compile_source  # noqa: E402
from util import compile_module  # noqa: E402

HERE = Path(__file__).parent


def _close(got, want, what: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, what
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    rtol = 1e-6 if want.dtype == np.float32 else 1e-12
    # (absolute: a multiple of the output's scale. Where a value is the difference of larger
    # terms, f32 rounding differs by a few ulps of those terms: the kernels sum in f64, the
    # NumPy backend in f32, and neither is the exact value)
    scale = float(np.max(np.abs(want[np.isfinite(want)]), initial=0.0))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=(8 if want.dtype == np.float32 else 1) * rtol * scale,
                               err_msg=what)


def _flat(value) -> list:
    if isinstance(value, (tuple, list)):
        return [x for v in value for x in _flat(v)]
    return [value]


def _copy(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def _extra(m, info, args) -> list:
    """The seeds a derivative function takes after the arguments: one per output of a vjp, one
    per wrt parameter of a jvp or hvp (random, so a wrong index or axis shows)."""
    rng = np.random.default_rng(7)
    if info["kind"] == "vjp":
        outs = _flat(getattr(m, info["of"])(*_copy(args)))
    elif info["kind"] in ("jvp", "hvp"):
        names = m.__tapeless__[info["of"]]["params"]
        outs = [args[names.index(w)] for w in info["wrt"]]
    else:
        return []
    return [(rng.standard_normal(np.shape(o)) * 0.5 + 1).astype(np.asarray(o).dtype) for o in outs]


# Every kind of function (fn and the _fwd/_bwd split too) for these programs; the derivatives (their
# values, gradients with out=) for the rest of the corpus. numba JIT-compiles every kernel of every module (about
# a second each on 2 cores, no cache in CI): all kinds of the whole corpus took 5 minutes.
ALL_KINDS = {"mlp.tl", "higher_order.tl", "slices.tl", "multi.tl"}


def _compare(text: str, name: str, tmp_path, kinds=("fn", "grad")) -> int:
    """Every function of the module of these kinds (fn, grad, vjp, jvp, hvp; the _fwd/_bwd split
    of a grad or vjp, each backend's _bwd from its own residuals) gives the NumPy backend's values."""
    mn = compile_module(text, tmp_path, name="np_" + name, path=name)
    mb = compile_module(text, tmp_path, name="nb_" + name, path=name, backend="numba")
    called = 0
    for fn, info in mn.__tapeless__.items():
        if info["kind"] in ("fwd", "bwd"):
            continue  # (run below, as the split of their grad or vjp)
        if info["kind"] not in kinds:
            continue
        args = inputs_for(mn, info.get("of", fn), text)
        extra = _extra(mn, info, args)
        want = getattr(mn, fn)(*_copy(args), *extra)
        got = getattr(mb, fn)(*_copy(args), *extra)
        for k, (g, w) in enumerate(zip(_flat(got), _flat(want))):
            _close(g, w, f"{name} {fn} output {k}")
        if info["kind"] == "grad" and info.get("wrt"):
            # out=: gradients added into the caller's arrays (a kernel adds straight into them)
            grads = _flat(want)[-len(info["wrt"]):]
            bufs_n = [np.full_like(np.asarray(g), 0.5) for g in grads]
            bufs_b = [b.copy() for b in bufs_n]
            getattr(mn, fn)(*_copy(args), out=tuple(bufs_n))
            getattr(mb, fn)(*_copy(args), out=tuple(bufs_b))
            for k, (g, w) in enumerate(zip(bufs_b, bufs_n)):
                _close(g, w, f"{name} {fn} out= buffer {k}")
        if info["kind"] in ("grad", "vjp") and "bwd" in kinds and hasattr(mn, f"{fn}_fwd"):
            (out_n, res_n), (out_b, res_b) = (getattr(m, f"{fn}_fwd")(*_copy(args)) for m in (mn, mb))
            for k, (g, w) in enumerate(zip(_flat(out_b), _flat(out_n))):
                _close(g, w, f"{name} {fn}_fwd output {k}")
            bwd_n = getattr(mn, f"{fn}_bwd")(res_n, *extra)
            bwd_b = getattr(mb, f"{fn}_bwd")(res_b, *extra)
            for k, (g, w) in enumerate(zip(_flat(bwd_b), _flat(bwd_n))):
                _close(g, w, f"{name} {fn}_bwd output {k}")
        called += 1
    return called


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_the_corpus_gives_the_numpy_backends_values(path, tmp_path):
    kinds = ("fn", "grad", "vjp", "jvp", "hvp", "bwd") if path.name in ALL_KINDS else ("grad", "vjp", "jvp", "hvp")
    assert _compare(path.read_text(), path.name, tmp_path, kinds) or "fn " not in path.read_text()


LAYER = """
fn layer(x: f32[N, D], y: f32[N, D], b: f32[D]) -> f32 {
    z = x + b
    m = sum(z, axis=1, keepdims=true) / 4
    h = tanh(z - m) * sigmoid(y)
    return sum(softplus(h) - h * y) + max(h)
}

grad layer wrt x, b
"""


@pytest.mark.parametrize("dtype", ["f32"])  # (f64 kernels: the corpus's f64 programs)
def test_a_chain_with_row_reductions_and_sinks_at_size(dtype, tmp_path):
    """Stages (a row sum read by the rest of the row), sinks over the rows (sum, max), out=
    accumulation, symbolic sizes, at a size with many blocks."""
    text = LAYER.replace("f32", dtype) + "# size N: 700\n# size D: 37\n"
    assert _compare(text, f"layer_{dtype}.tl", tmp_path, ("fn", "grad")) == 2


WIDE_ROWS = """
fn wide(x: f32[N, D], b: f32[D]) -> f32 {
    z = exp(x * 0.1) + b
    r = sum(z, axis=1, keepdims=true)
    return sum(z / r) + sum(r)
}

grad wide wrt x, b
"""


def test_a_split_loop_over_rows_longer_than_its_chunk(tmp_path):
    """f32 values summed into f64 accumulators (a row sum, the sinks of b's gradient) split the
    innermost loop in two (numba_writer.NumbaKernel.inner); a row of 2500 runs it in chunks of
    1024, the last one short."""
    text = compile_source(WIDE_ROWS, backend="numba", path="wide.tl")
    assert "for c1 in range(np.uint64(0), np.uint64(n1), np.uint64(1024)):" in text and "np.uint64(lo)" in text
    assert _compare(WIDE_ROWS + "# size N: 6\n# size D: 2500\n", "wide.tl", tmp_path, ("fn", "grad")) == 2


def test_the_kernel_is_one_pass_written_from_the_program(tmp_path):
    text = compile_source(LAYER, backend="numba", path="layer.tl")
    assert '@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy", fastmath={"contract"})' in text
    assert "_tl_sigmoid_f32(y[" in text and "_tl_softplus_f32(" in text  # whole-op forms, not templates
    assert "_tl_tanh_f32(" in text and "np.tanh" not in text and "np.exp(" not in text
    assert "numba.prange(nblocks)" in text
    assert "np.float32(4.0)" in text or "np.float32(0.25)" in text  # constants typed: f32 stays f32
    assert "# layer.tl:4" in text  # each step says where it comes from
    assert "def _blocks" not in text  # (no NumPy blocked loop left)


def test_modules_import_only_numpy_numba_and_the_standard_library():
    for path in PROGRAMS:
        text = compile_source(path.read_text(), backend="numba", path=path.name)
        roots = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                roots |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots.add((node.module or "").split(".")[0])
        assert roots <= {"numpy", "numba", "math", "os", "contextvars", "contextlib", "scipy"} | set(
            sys.stdlib_module_names), (path.name, roots)
        assert "numba" in roots and "torch" not in roots and "jax" not in roots


_THREADS = r"""
import hashlib, sys, numpy as np
sys.path.insert(0, {tests!r})
from util import compile_module
from pathlib import Path
m = compile_module({text!r}, Path({tmp!r}), name="thr", path="layer.tl", backend="numba")
rng = np.random.default_rng(3)
# 16000 x 37 elements: over numba_writer.PARALLEL_ELEMENTS, so the kernels run on the threads
x, y = rng.standard_normal((16000, 37)).astype(np.float32), rng.standard_normal((16000, 37)).astype(np.float32)
b = rng.standard_normal(37).astype(np.float32)
v, gx, gb = m.layer_grad(x, y, b)
sys.stdout.write(np.asarray(v).tobytes().hex() + hashlib.sha256(gx.tobytes()).hexdigest() + gb.tobytes().hex())
"""


def test_the_same_bits_for_any_number_of_threads(tmp_path):
    outs = []
    for threads in ("1", "2"):
        d = tmp_path / threads
        d.mkdir()
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        code = _THREADS.format(tests=str(HERE), text=LAYER, tmp=str(d))
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(r.stdout)
    assert outs[0] == outs[1] and len(outs[0]) > 100
