"""Forward values of every built-in against an independent NumPy reference, extremes included."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special

from catalogue import CASES, Case, conv2d_reference


def _run(case: Case, m, inputs: dict):
    return np.asarray(m.f(*inputs.values()))


def _reference(case: Case, inputs: dict):
    with np.errstate(all="ignore"):
        return np.asarray(eval(case.ref, {"np": np, "scipy": scipy, "conv2d_reference": conv2d_reference},
                               dict(inputs)))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_forward_matches_numpy(case: Case, tl):
    m = tl(case.source())
    for seed in range(3):
        inputs = case.inputs(seed)
        got = _run(case, m, inputs)
        want = _reference(case, inputs)
        assert got.shape == want.shape
        tol = 1e-5 if any(v.dtype == np.float32 for v in inputs.values()) else 1e-12
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


EXTREME_CASES = [c for c in CASES if c.extremes]


@pytest.mark.parametrize("case", EXTREME_CASES, ids=lambda c: c.name)
def test_forward_at_extremes(case: Case, tl):
    """No overflow, no nan and no warning where the stable form has a finite value."""
    m = tl(case.source().replace(next(iter(case.params.values())), _extreme_type(case)))
    for extreme in case.extremes:
        inputs = {k: np.asarray(extreme.get(k, v)) for k, v in case.inputs().items()}
        want = _reference(case, inputs)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            got = _run(case, m, inputs)
        assert np.all(np.isfinite(got) == np.isfinite(want)), (got, want)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def _extreme_type(case: Case) -> str:
    first = next(iter(case.params))
    values = case.extremes[0][first]
    dtype = case.params[first].partition("[")[0]
    return f"{dtype}[{', '.join(map(str, np.shape(values)))}]"


@pytest.mark.parametrize("n_decl", ["2", "N"])
def test_var_with_ddof_at_or_beyond_the_count_is_numpys(n_decl, tl):
    """NumPy divides by max(n - ddof, 0): inf for a positive sum, nan for 0 / 0. tapeless
    divided by n - ddof and gave -0.5 for var([1, 2], ddof=3); with a literal size and with a
    symbol bound at run time."""
    m = tl(f"fn f(x: f64[{n_decl}]) -> f64 {{\n    return var(x, ddof=3)\n}}\n"
           f"fn g(x: f64[{n_decl}]) -> f64 {{\n    return std(x, ddof=2)\n}}\n")
    for x in (np.array([1.0, 2.0]), np.array([1.0, 1.0])):
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            want_var, want_std = np.var(x, ddof=3), np.std(x, ddof=2)
        with np.errstate(all="ignore"):
            np.testing.assert_equal(m.f(x), want_var)
            np.testing.assert_equal(m.g(x), want_std)
