"""dask_grad: a generated grad function over dask arrays chunked along the batch equals the
in-memory gradient (1e-6 relative in f32), on the threaded scheduler and on a LocalCluster of
two worker processes; values the examples meet in are refused with the compiler's reason."""
from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="dask_grad needs dask[array]")
dask = pytest.importorskip("dask", reason="dask_grad needs dask")

from tapeless.runtime import dask_grad, load  # noqa: E402

PROGRAMS = """
fn logreg(x: f32[N, D], y: f32[N], w: f32[D], lam: f32) -> f32 {
    z = x @ w
    return mean(bce_with_logits(z, y)) + lam * sum(w * w)
}
grad logreg wrt w, lam

fn mse(x: f32[N, D], y: f32[N], w: f32[D], b: f32) -> f32 {
    r = x @ w + b - y
    return sum(r * r)
}
grad mse wrt w, b
grad mse wrt x, w as mse_dx

fn ce(x: f32[N, D], labels: i64[N], w: f32[D, C]) -> f32 {
    return mean(cross_entropy(x @ w, labels))
}
grad ce wrt w

fn bn(x: f32[N, D], w: f32[D]) -> f32 {
    m = mean(x, axis=0)
    return sum(tanh((x - m) @ w))
}
grad bn wrt w

fn top(x: f32[N, D], w: f32[D]) -> f32 {
    return max(x @ w, axis=0)
}
grad top wrt w

fn l2sum(x: f32[N, D], y: f32[N], w: f32[D]) -> f32 {
    return sum((x @ w - y) ** 2) + 0.5 * sum(w * w)
}
grad l2sum wrt w
"""


@pytest.fixture(scope="module")
def m(tmp_path_factory):
    d = tmp_path_factory.mktemp("dask")
    path = d / "models.tl"
    path.write_text(PROGRAMS)
    import os

    old = os.environ.get("TAPELESS_CACHE_DIR")
    os.environ["TAPELESS_CACHE_DIR"] = str(d / "cache")
    try:
        yield load(path)
    finally:
        if old is None:
            del os.environ["TAPELESS_CACHE_DIR"]
        else:
            os.environ["TAPELESS_CACHE_DIR"] = old


def data(n=2000, d=8, c=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    w = rng.standard_normal(d).astype(np.float32) * 0.5
    y = (x @ w + rng.standard_normal(n).astype(np.float32) > 0).astype(np.float32)
    labels = rng.integers(0, c, size=n)
    wc = rng.standard_normal((d, c)).astype(np.float32)
    return x, y, w, labels, wc


def assert_close(got, ref):
    """Each result within 1e-6 of the in-memory one, relative to its size (its norm: gradients)."""
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        g, r = np.asarray(g), np.asarray(r)
        assert g.dtype == r.dtype and g.shape == r.shape
        assert np.linalg.norm(g - r) <= 1e-6 * np.linalg.norm(r), (g, r)


# ---- equal to the in-memory gradient --------------------------------------------------------------------
@pytest.mark.parametrize("chunks", [500, (700, 300, 1000), 2000])
def test_logistic_regression_mean_with_an_l2_term(m, chunks):
    x, y, w, _, _ = data()
    lam = np.float32(0.1)
    ref = m.logreg_grad(x, y, w, lam)
    got = dask_grad(m.logreg_grad, da.from_array(x, chunks=(chunks, 8)), da.from_array(y, chunks=chunks), w, lam)
    assert isinstance(got[0], np.float32)
    assert_close(got, ref)


def test_a_sum_of_squares_adds_the_shards(m):
    x, y, w, _, _ = data(seed=1)
    ref = m.mse_grad(x, y, w, 0.25)
    got = dask_grad(m.mse_grad, da.from_array(x, chunks=(600, 8)), da.from_array(y, chunks=600), w, 0.25)
    assert_close(got, ref)


def test_cross_entropy_with_labels(m):
    # (600 rows: the in-memory f32 gradient's own rounding grows with the rows, 6e-7 of the exact
    # one at 2,000; the next test shows the shards' is the smaller error)
    x, _, _, labels, wc = data(n=600, seed=2)
    ref = m.ce_grad(x, labels, wc)
    got = dask_grad(m.ce_grad, da.from_array(x, chunks=(170, 8)), da.from_array(labels, chunks=170), wc)
    assert_close(got, ref)


def test_the_shards_are_as_close_to_the_exact_gradient_as_the_in_memory_one(m, tl):
    exact = tl(PROGRAMS, float64=True)  # the same program in f64
    x, _, _, labels, wc = data(n=4000, seed=3)
    ref = m.ce_grad(x, labels, wc)
    got = dask_grad(m.ce_grad, da.from_array(x, chunks=(500, 8)), da.from_array(labels, chunks=500), wc)
    _, d_exact = exact.ce_grad(x.astype(np.float64), labels, wc.astype(np.float64))
    err = [np.linalg.norm(g[1].astype(np.float64) - d_exact) / np.linalg.norm(d_exact) for g in (got, ref)]
    assert err[0] <= err[1] and err[0] < 5e-7, err


def test_numpy_arguments_with_the_batch_are_cut_like_the_dask_ones(m):
    x, y, w, _, _ = data(seed=3)
    ref = m.logreg_grad(x, y, w, 0.0)
    assert_close(dask_grad(m.logreg_grad, da.from_array(x, chunks=(400, 8)), y, w, 0.0), ref)


def test_batch_free_dask_arguments_are_computed_once_and_shared(m):
    x, y, w, _, _ = data(seed=4)
    ref = m.logreg_grad(x, y, w, 0.1)
    got = dask_grad(m.logreg_grad, da.from_array(x, chunks=(500, 8)), da.from_array(y, chunks=500),
                    da.from_array(w), 0.1)
    assert_close(got, ref)


def test_a_gradient_with_respect_to_the_batch_is_put_back_together(m):
    x, y, w, _, _ = data(seed=5)
    ref = m.mse_dx(x, y, w, 0.5)
    got = dask_grad(m.mse_dx, da.from_array(x, chunks=(300, 8)), da.from_array(y, chunks=300), w, 0.5)
    assert got[1].shape == x.shape
    assert_close(got, ref)


def test_compute_false_gives_dask_arrays(m):
    x, y, w, _, _ = data(seed=6)
    lazy = dask_grad(m.logreg_grad, da.from_array(x, chunks=(500, 8)), da.from_array(y, chunks=500), w, 0.1,
                     compute=False)
    assert all(isinstance(r, da.Array) for r in lazy)
    assert [r.shape for r in lazy] == [(), (8,), ()]
    assert_close(dask.compute(*lazy), m.logreg_grad(x, y, w, 0.1))


def test_the_tree_reduction_with_a_small_fan_in(m):
    x, y, w, _, _ = data(seed=7)
    got = dask_grad(m.logreg_grad, da.from_array(x, chunks=(100, 8)), da.from_array(y, chunks=100), w, 0.1,
                    split_every=2)
    assert_close(got, m.logreg_grad(x, y, w, 0.1))


def test_chunks_along_several_axes_need_the_batch_named(m):
    x, y, w, _, _ = data(seed=8)
    xd = da.from_array(x, chunks=(500, 4))
    with pytest.raises(ValueError, match=r"several size symbols: D \(x axis 1\); N \(x axis 0, y axis 0\)"):
        dask_grad(m.logreg_grad, xd, da.from_array(y, chunks=500), w, 0.1)
    got = dask_grad(m.logreg_grad, xd, da.from_array(y, chunks=500), w, 0.1, batch="N")
    assert_close(got, m.logreg_grad(x, y, w, 0.1))


# ---- refused, with the reason -----------------------------------------------------------------------------
def test_a_batch_norm_is_refused_naming_the_operation_and_place(m):
    x, _, w, _, _ = data()
    with pytest.raises(ValueError) as e:
        dask_grad(m.bn_grad, da.from_array(x, chunks=(500, 8)), w)
    assert str(e.value) == ("dask_grad(bn_grad): bn's value does not split over the examples along N: `sub` at "
                            f"{m.__tl_source__}:22:22 (`x - m`) combines each example with the sum over N made by "
                            f"`sum` at {m.__tl_source__}:21:9 (`mean(x, axis=0)`)")


def test_a_max_over_the_batch_is_refused(m):
    x, _, w, _, _ = data()
    with pytest.raises(ValueError, match=r"max over N at .*models.tl:27:12 \(`max\(x @ w, axis=0\)`\)"):
        dask_grad(m.top_grad, da.from_array(x, chunks=(500, 8)), w)


def test_a_sum_with_a_batch_free_term_is_refused(m):
    x, y, w, _, _ = data()
    with pytest.raises(ValueError, match=r"the term `mul` at .*models.tl:32:36 \(`0.5 \* sum\(w \* w\)`\) does not "
                                         r"depend on the examples along N"):
        dask_grad(m.l2sum_grad, da.from_array(x, chunks=(500, 8)), da.from_array(y, chunks=500), w)


def test_chunks_that_disagree_are_refused(m):
    x, y, w, _, _ = data()
    with pytest.raises(ValueError, match=r"arguments 'x' and 'y' have different chunks along N: \(500, 500, 500, "
                                         r"500\) and \(1000, 1000\)"):
        dask_grad(m.logreg_grad, da.from_array(x, chunks=(500, 8)), da.from_array(y, chunks=1000), w, 0.1)


def test_wrong_calls_are_refused(m):
    x, y, w, _, _ = data()
    xd, yd = da.from_array(x, chunks=(500, 8)), da.from_array(y, chunks=500)
    with pytest.raises(TypeError, match=r"dask_grad\(logreg_grad\): no argument is a dask array"):
        dask_grad(m.logreg_grad, x, y, w, 0.1)
    with pytest.raises(TypeError, match=r"logreg_grad_fwd is the fwd half of `grad logreg`.*dask_grad takes the "
                                        r"whole function of a `grad` directive"):
        dask_grad(m.logreg_grad_fwd, xd, yd, w, 0.1)
    with pytest.raises(TypeError, match=r"logreg is a plain function \(add `grad logreg wrt ...` to the .tl file\)"):
        dask_grad(m.logreg, xd, yd, w, 0.1)
    with pytest.raises(TypeError, match=r"takes 4 arguments \(x, y, w, lam\), got 3"):
        dask_grad(m.logreg_grad, xd, yd, w)
    with pytest.raises(TypeError, match="not a function of a tapeless-generated module"):
        dask_grad(np.sum, xd)
    with pytest.raises(ValueError, match=r"argument 'y' has N = 1000 along axis 0, but the dask arguments have "
                                         r"N = 2000"):
        dask_grad(m.logreg_grad, xd, y[:1000], w, 0.1)
    with pytest.raises(ValueError, match=r"batch='B' is not a size symbol of its parameters \(D, N\)"):
        dask_grad(m.logreg_grad, xd, yd, w, 0.1, batch="B")


# ---- two worker processes ---------------------------------------------------------------------------------
def test_a_local_cluster_of_two_worker_processes(m):
    distributed = pytest.importorskip("distributed", reason="the cluster test needs dask.distributed")
    x, y, w, labels, wc = data(n=3000, seed=9)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        got = dask_grad(m.logreg_grad, da.from_array(x, chunks=(700, 8)), da.from_array(y, chunks=700), w, 0.1)
        assert_close(got, m.logreg_grad(x, y, w, 0.1))
        x, labels = x[:600], labels[:600]
        got = dask_grad(m.ce_grad, da.from_array(x, chunks=(200, 8)), da.from_array(labels, chunks=200), wc)
        assert_close(got, m.ce_grad(x, labels, wc))
        # the function went to both workers as its module's text, not by the cache's module name
        made = client.run(lambda: sorted(k for k in __import__("sys").modules if k.startswith("_tapeless_portable_")))
        assert len(made) == 2 and all(len(v) == 1 for v in made.values())


def test_the_runtime_imports_dask_only_when_dask_grad_is_asked_for():
    import subprocess
    import sys

    code = ("import sys, tapeless.runtime as r; assert not [m for m in sys.modules if m.split('.')[0] == 'dask']; "
            "r.dask_grad; assert 'dask' not in sys.modules; from tapeless.runtime import dask_grad")
    subprocess.run([sys.executable, "-c", code], check=True)
