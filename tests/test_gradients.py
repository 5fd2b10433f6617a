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


@pytest.mark.parametrize("case", DIFFERENTIABLE, ids=lambda c: c.name)
def test_jvp_matches_finite_differences(case: Case, tl):
    m = tl(case.source())
    for seed in range(2):
        assert gradcheck(m.f_jvp, *case.inputs(seed).values(), seed=seed)


@pytest.mark.parametrize("case", DIFFERENTIABLE, ids=lambda c: c.name)
def test_jvp_and_vjp_are_adjoint(case: Case, tl):
    """<vjp(ct), t> == <ct, jvp(t)> exactly (to rounding): two independent sets of rules."""
    import numpy as np

    m = tl(case.source())
    inputs = list(case.inputs(0).values())
    rng = np.random.default_rng(7)
    names = list(case.params)
    ks = [names.index(n) for n in case.grad_params()]
    ts = [rng.standard_normal(np.shape(inputs[k])) for k in ks]
    outs = m.f(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    cts = [rng.standard_normal(np.shape(o)) for o in outs]
    grads = m.f_vjp(*inputs, *cts)[len(outs):]
    tangents = m.f_jvp(*inputs, *ts)[len(outs):]
    lhs = sum(float(np.sum(np.asarray(g) * t)) for g, t in zip(grads, ts))
    rhs = sum(float(np.sum(np.asarray(c) * np.asarray(t))) for c, t in zip(cts, tangents))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-12)
