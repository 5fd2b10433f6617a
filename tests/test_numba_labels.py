"""--backend numba: cross_entropy's label ops (pick_label, sub_label) and the bias gradient's sum
over the rows run inside the fused kernel (program.py, rules(labels=True)), and give the NumPy
backend's values: both dtypes, odd batch sizes, out= accumulation, per-row weights (a sub_label
of [N, 1] amounts), labels over two leading axes; bad labels raise the NumPy backend's error.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="tapeless-numba-tests-"))
numba = pytest.importorskip("numba", reason="numba is not installed (pip install tapeless[numba])")

from tapeless.compiler import compile_source  # noqa: E402
from util import assert_backend_values, compile_module  # noqa: E402

CE = """
fn ce(z: f32[N, C], labels: i64[N], b: f32[C], w: f32[N]) -> f32 {
    logits = z + b
    return mean(cross_entropy(logits, labels)) + sum(cross_entropy(logits * 0.5, labels) * w)
}

grad ce wrt z, b, w

fn ce3(z: f32[B, T, C], labels: i64[B, T], b: f32[C]) -> f32 {
    return mean(cross_entropy(z + b, labels))
}

grad ce3 wrt z, b
"""




@pytest.fixture(scope="module", params=["f32", "f64"])
def modules(request, tmp_path_factory):
    """(NumPy backend's module, numba backend's module) of CE in one dtype: numba compiles a
    kernel when it is first called, so each module's kernels are compiled once for all tests."""
    dtype = request.param
    text, tmp = CE.replace("f32", dtype), tmp_path_factory.mktemp(dtype)
    return dtype, (compile_module(text, tmp, name=f"np_ce_{dtype}", path="ce.tl"),
                   compile_module(text, tmp, name=f"nb_ce_{dtype}", path="ce.tl", backend="numba"))


def test_cross_entropy_and_its_bias_sum_give_the_numpy_backends_values(modules):
    dtype, (mn, mb) = modules
    dt = np.float32 if dtype == "f32" else np.float64
    for n in (1, 7, 301):  # (odd batches: blocks of rows that do not divide them)
        rng = np.random.default_rng(n)
        c = 5
        args = (rng.standard_normal((n, c)).astype(dt) * 3, rng.integers(0, c, n),
                rng.standard_normal(c).astype(dt), rng.standard_normal(n).astype(dt))
        want, got = mn.ce_grad(*args), mb.ce_grad(*args)
        for k, (g, w) in enumerate(zip(got, want)):
            assert_backend_values(g, w, f"{dtype} N={n} output {k}")
        # out=: the gradients added into the caller's arrays
        bufs_n = [np.full_like(g, 0.5) for g in want[1:]]
        bufs_b = [b.copy() for b in bufs_n]
        mn.ce_grad(*args, out=tuple(bufs_n))
        back = mb.ce_grad(*args, out=tuple(bufs_b))
        assert all(r is b for r, b in zip(back[1:], bufs_b))
        for k, (g, w) in enumerate(zip(bufs_b, bufs_n)):
            assert_backend_values(g, w, f"{dtype} N={n} out= buffer {k}")


def test_labels_over_two_leading_axes(modules):
    dtype, (mn, mb) = modules
    dt = np.float32 if dtype == "f32" else np.float64
    rng = np.random.default_rng(0)
    args = (rng.standard_normal((3, 5, 7)).astype(dt), rng.integers(0, 7, (3, 5)), rng.standard_normal(7).astype(dt))
    for k, (g, w) in enumerate(zip(mb.ce3_grad(*args), mn.ce3_grad(*args))):
        assert_backend_values(g, w, f"{dtype} output {k}")


@pytest.mark.parametrize("bad", [5, -1])
def test_a_bad_label_raises_the_numpy_backends_error(bad, modules):
    dtype, (mn, mb) = modules
    dt = np.float32 if dtype == "f32" else np.float64
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 9)
    labels[4] = bad
    args = (rng.standard_normal((9, 5)).astype(dt), labels, rng.standard_normal(5).astype(dt),
            rng.standard_normal(9).astype(dt))
    errors = []
    for m in (mn, mb):
        with pytest.raises(ValueError) as e:
            m.ce_grad(*args)
        errors.append(str(e.value))
    assert errors[0] == errors[1] and "labels" in errors[0] and "[0, 5)" in errors[0]


def test_the_label_ops_and_the_bias_sum_are_in_the_kernel():
    text = compile_source(CE, backend="numba", path="ce.tl")
    grad = text[text.index("def ce_grad("):text.index("def ce_grad_fwd(")]
    assert "take_along_axis" not in grad and "_sub_label(" not in grad  # (no NumPy call between kernels)
    assert "np.sum(" not in grad  # (b's gradient: the kernel's per-block partials, combined after)
    # (the class compared with the row's label, in the loop; as an int64 in a split loop's chunks)
    assert "(j1 == " in text or "(np.int64(j1) == " in text
    # softmax's exp, made for the row's sum, is kept for exp / sum in the next stage, not made again
    k = text[text.index("def _ce_grad_k0_rows("):text.index("def _ce_grad_k0(")]
    assert k.count("_tl_exp_f32(") == 2 and "(kept by the stage that made it)" in k
