"""Every built-in's derivative against central finite differences in f64 (runtime.gradcheck),
on shapes that broadcast, plus the dot-product test <vjp(ct), t> = <ct, J t>."""
from __future__ import annotations

import pytest

from catalogue import CASES, Case
from tapeless.runtime import gradcheck

DIFFERENTIABLE = [c for c in CASES if c.grad_params() and c.finite_differences and "f32" not in c.source()]


@pytest.mark.parametrize("case", DIFFERENTIABLE, ids=lambda c: c.name)
def test_vjp_matches_finite_differences(case: Case, tl):
    m = tl(case.source())
    for seed in range(2):
        assert gradcheck(m.f_vjp, *case.inputs(seed).values(), seed=seed)
