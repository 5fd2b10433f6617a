"""Forward values of every built-in against an independent NumPy reference, extremes included."""
from __future__ import annotations

import numpy as np
import pytest

from catalogue import CASES, Case


def _run(case: Case, m, inputs: dict):
    return np.asarray(m.f(*inputs.values()))


def _reference(case: Case, inputs: dict):
    with np.errstate(all="ignore"):
        return np.asarray(eval(case.ref, {"np": np}, dict(inputs)))


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
