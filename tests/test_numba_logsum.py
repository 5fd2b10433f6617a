"""--backend numba: a float32 row sum of a + log(u), u known to lie in [1, 2] (bce_with_logits'
log(1 + exp(-|z|))), adds the log of u's product once per row (numba_writer.log_parts), and
gives the NumPy backend's values; nan still propagates; an unbounded u keeps its logs."""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="tapeless-numba-tests-"))
numba = pytest.importorskip("numba", reason="numba is not installed (pip install tapeless[numba])")

from tapeless.compiler import compile_source  # noqa: E402
from util import compile_module  # noqa: E402

BCE = """
fn bce(z: f32[N, 37], y: f32[N, 37], b: f32[37]) -> f32 {
    return mean(bce_with_logits(z + b, y))
}

grad bce wrt z, b
"""

LOGS = """
fn logs(x: f32[N, 37]) -> f32 {
    return sum(log(x * x + 1.0) - x)
}
"""


def test_a_sum_of_bounded_logs_gives_the_numpy_backends_values(tmp_path):
    text = compile_source(BCE, backend="numba", path="bce.tl")
    assert "np.log(acc_prod)" in text  # (the row's logs as one log of their product)
    mn = compile_module(BCE, tmp_path, name="np_bce", path="bce.tl")
    mb = compile_module(BCE, tmp_path, name="nb_bce", path="bce.tl", backend="numba")
    rng = np.random.default_rng(0)
    for n in (1, 9, 700):
        z = (rng.standard_normal((n, 37)) * 4).astype(np.float32)
        z[0, :3] = (-200.0, 200.0, 0.0)  # (u at its bounds: 1 and 2)
        y = (rng.random((n, 37)) < 0.5).astype(np.float32)
        b = rng.standard_normal(37).astype(np.float32)
        want, got = mn.bce_grad(z, y, b), mb.bce_grad(z, y, b)
        for k, (g, w) in enumerate(zip(got, want)):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=8e-6 * float(np.max(np.abs(w))), err_msg=f"N={n} {k}")
        z[n // 2, 5] = np.nan
        assert np.isnan(mb.bce(z, y, b)) and np.isnan(mn.bce(z, y, b))


def test_an_unbounded_log_keeps_its_logs(tmp_path):
    text = compile_source(LOGS, backend="numba", path="logs.tl")
    assert "_prod" not in text and "_tl_log_f32(" in text  # (x * x + 1 is not bounded above)
