"""The CPU harness for CuPy's user kernels (tests/cupy_kernels_cpu.py), on hand-written kernels:
broadcasting, scalars, given and allocated outputs, raw parameters, type placeholders, CUDA's
min/max, reductions over any axes with keepdims and out=, and the errors."""
from __future__ import annotations

import numpy as np
import pytest

import cupy_kernels_cpu as ck

pytestmark = pytest.mark.skipif(ck.compiler() is None, reason="no C++ compiler (g++) to run CuPy kernels on the CPU")


def test_elementwise_broadcasts_inputs_and_allocates_the_output():
    k = ck.ElementwiseKernel("float32 x, float32 y, float32 s", "float32 z", "z = expf(x) * y + s", "axpy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, 5)).astype(np.float32)
    y = rng.standard_normal((4, 1)).astype(np.float32)
    z = k(x, y, 0.5)
    assert z.shape == (3, 4, 5) and z.dtype == np.float32
    np.testing.assert_allclose(z, np.exp(x) * y + np.float32(0.5), rtol=1e-6)


def test_elementwise_writes_a_given_output_and_reads_strided_views():
    k = ck.ElementwiseKernel("float64 x", "float64 z", "z = z + x * 2", "acc")
    base = np.arange(24.0).reshape(4, 6)
    x = base[::2, ::3].T  # non-contiguous, transposed
    out = np.ones((2, 2))
    assert k(x, out) is out
    np.testing.assert_array_equal(out, 1 + 2 * x)


def test_type_placeholders_take_the_arrays_dtype_and_several_outputs_come_as_a_tuple():
    k = ck.ElementwiseKernel("T x, T y", "T lo, T hi", "lo = min(x, y); hi = max(x, y)", "minmax")
    for dt in (np.float32, np.float64, np.int64, np.int32):
        x = np.array([3, -1, 7], dtype=dt)
        lo, hi = k(x, np.array(2, dtype=dt))
        assert lo.dtype == dt
        np.testing.assert_array_equal(lo, np.minimum(x, 2))
        np.testing.assert_array_equal(hi, np.maximum(x, 2))


def test_cuda_max_of_nan_is_the_other_operand():
    """CUDA's max(float, float) is fmaxf: a kernel wanting NumPy's NaN-propagating maximum must say so."""
    k = ck.ElementwiseKernel("float32 x", "float32 z", "z = max(x, 1.0f)", "fmax_like")
    np.testing.assert_array_equal(k(np.array([np.nan, 0.0, 2.0], np.float32)), [1.0, 1.0, 2.0])


def test_raw_parameters_are_indexed_by_a_flat_c_order_index():
    k = ck.ElementwiseKernel("raw float64 x", "float64 y", "y = x[_ind.size() - i - 1] + x.size()", "rev")
    x = np.arange(6.0).reshape(2, 3).T  # flat C order of the transposed view: 0 3 1 4 2 5
    y = k(x, size=6)
    np.testing.assert_array_equal(y, np.ravel(x)[::-1] + 6)
    k2 = ck.ElementwiseKernel("float64 a, raw float64 x", "float64 y", "y = a + x[i % 2]", "mixed")
    np.testing.assert_array_equal(k2(np.zeros(4), np.array([10.0, 20.0])), [10, 20, 10, 20])


def test_preamble_functions_are_device_functions():
    pre = "__device__ float sq(float v) { return v * v; }"
    k = ck.ElementwiseKernel("float32 x", "float32 y", "y = sq(x)", "sq_kernel", preamble=pre)
    np.testing.assert_array_equal(k(np.array([1.5, -2.0], np.float32)), [2.25, 4.0])


def test_reduction_over_axes_with_keepdims_and_out():
    l2 = ck.ReductionKernel("T x", "T y", "x * x", "a + b", "y = sqrt(a)", "0", "l2norm")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 5))
    np.testing.assert_allclose(l2(x), np.sqrt((x * x).sum()), rtol=1e-14)
    np.testing.assert_allclose(l2(x, axis=1), np.sqrt((x * x).sum(1)), rtol=1e-14)
    np.testing.assert_allclose(l2(x, axis=(0, -1), keepdims=True), np.sqrt((x * x).sum((0, 2), keepdims=True)),
                               rtol=1e-14)
    out = np.empty(4)
    assert l2(x, axis=(0, 2), out=out) is out
    np.testing.assert_allclose(out, np.sqrt((x * x).sum((0, 2))), rtol=1e-14)


def test_reduction_broadcasts_its_inputs_and_counts_elements():
    mean_sq = ck.ReductionKernel("float64 x, float64 m", "float64 y", "(x - m) * (x - m)", "a + b",
                                 "y = a / (_in_ind.size() / _out_ind.size())", "0", "var")
    x = np.random.default_rng(2).standard_normal((6, 7))
    m = x.mean(1, keepdims=True)
    np.testing.assert_allclose(mean_sq(x, m, axis=1), x.var(1), rtol=1e-13)


def test_max_reduction_from_its_identity_and_of_an_empty_axis():
    mx = ck.ReductionKernel("float32 x", "float32 y", "x", "max(a, b)", "y = a", "-INFINITY", "rmax")
    x = np.random.default_rng(3).standard_normal((5, 300)).astype(np.float32)
    np.testing.assert_array_equal(mx(x, axis=1), x.max(1))
    np.testing.assert_array_equal(mx(np.zeros((3, 0), np.float32), axis=1), [-np.inf] * 3)
    no_identity = ck.ReductionKernel("float32 x", "float32 y", "x", "max(a, b)", "y = a", None, "rmax2")
    np.testing.assert_array_equal(no_identity(x, axis=0), x.max(0))
    with pytest.raises(ValueError, match="zero-size"):
        no_identity(np.zeros((3, 0), np.float32), axis=1)


def test_float32_sums_are_combined_pairwise_as_on_a_gpu():
    """A million float32 values: a sequential float32 sum is off by ~1e-5 relative; the harness's
    per-thread partials combined pairwise stay near float32's epsilon, as a GPU's block does."""
    s = ck.ReductionKernel("float32 x", "float32 y", "x", "a + b", "y = a", "0", "fsum")
    x = np.random.default_rng(4).uniform(0.5, 1.5, 1_000_000).astype(np.float32)
    exact = x.astype(np.float64).sum()
    assert abs(float(s(x)) - exact) / exact < 2e-6


def test_wrong_dtype_shape_or_count_is_an_error():
    k = ck.ElementwiseKernel("float32 x", "float32 z", "z = x", "copy32")
    with pytest.raises(TypeError, match="float32"):
        k(np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        k(np.zeros(3, np.float32), np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="number of arguments"):
        k()
    with pytest.raises(ValueError, match="loop size"):
        ck.ElementwiseKernel("raw float32 x", "float32 z", "z = x[i]", "rawonly")(np.zeros(3, np.float32))


def test_a_compile_error_shows_the_numbered_source():
    k = ck.ElementwiseKernel("float32 x", "float32 z", "z = undefined_function(x)", "broken")
    with pytest.raises(ck.CompileError, match=r"undefined_function[\s\S]*---- source ----[\s\S]*z = undefined"):
        k(np.zeros(2, np.float32))


def test_the_compiled_library_is_cached_by_source(tmp_path, monkeypatch):
    monkeypatch.setenv("TAPELESS_CUPY_CPU_CACHE", str(tmp_path))
    k = ck.ElementwiseKernel("float64 x", "float64 z", "z = x + 1.0 / 3", "cached_kernel")
    k(np.zeros(2))
    libs = list(tmp_path.glob("*.so"))
    assert len(libs) == 1
    stamp = libs[0].stat().st_mtime_ns
    ck._LOADED.clear()  # a fresh process: loads the library from disk, does not compile again
    np.testing.assert_allclose(k(np.zeros(2)), 1 / 3)
    assert [p.stat().st_mtime_ns for p in tmp_path.glob("*.so")] == [stamp]
    assert not list(tmp_path.glob("*.cpp"))
