"""`tapeless check` sees every wrong derivative rule: for every differentiable primitive of the
table, its VJP rule and then its JVP rule are replaced by one whose every result is off by one
(a result the rule leaves out, a zero, becomes ones), and the check of a small program using
the primitive (its first example) must FAIL.

TAPELESS_MUTATION_LONG=1 runs every example of every primitive with two wrong versions of
each rule: off by one, and scaled by 1.5."""
from __future__ import annotations

import dataclasses
import os

import pytest
from tapeless.compiler.core.primitive import REGISTRY
from tapeless.compiler.primitives import algebra as B
from tapeless.compiler.tools.check import format_table
from tapeless.compiler.tools.primitive_proofs import check_primitive

LONG = os.environ.get("TAPELESS_MUTATION_LONG") == "1"
# (stop_gradient's rules are never called: the sweeps treat it as a constant, which
# test_symcheck.py::test_stop_gradient_is_a_constant_to_the_check proves)
CHECKED = sorted(n for n, p in REGISTRY.items()
                 if p.examples and p.differentiable and not p.detaches and p.sympy is not None)
MUTATIONS = ("plus one", "times 1.5") if LONG else ("plus one",)


def _ones(like):
    return B.apply("full", shape=tuple(like.shape), value=1.0, dtype=like.dtype)


def _wrong(value, like, how: str):
    """A derivative `value` (None: zero) for a result shaped as `like`, made wrong."""
    if how == "plus one":
        return _ones(like) if value is None else B.add(value, B.like_const(1, value))
    return None if value is None else B.mul(value, B.like_const(1.5, value))


def _wrong_vjp(rule, how):
    def vjp(ctx, node, ct, needs):
        out = rule(ctx, node, ct, needs)
        return [_wrong(c, x, how) if need and x.dtype.is_float else c
                for c, x, need in zip(out, node.inputs, needs)]

    return vjp


def _wrong_jvp(rule, how):
    def jvp(ctx, node, ts):
        return _wrong(rule(ctx, node, ts), node, how)

    return jvp


@pytest.mark.parametrize("how", MUTATIONS)
@pytest.mark.parametrize("facet", ["vjp", "jvp"])
@pytest.mark.parametrize("name", CHECKED)
def test_a_wrong_rule_fails_the_check(monkeypatch, name, facet, how):
    prim = REGISTRY[name]
    make = _wrong_vjp if facet == "vjp" else _wrong_jvp
    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(prim, **{facet: make(getattr(prim, facet), how)}))
    results = check_primitive(name, derivatives=(facet,), examples=None if LONG else 1)
    assert results, f"{name}: no derivative to check"
    if how == "times 1.5":  # scaling leaves a rule whose result is 0 at the points as it was
        results = [r for r in results if r.status != "pass" or "0 everywhere" not in prim.doc]
    assert all(r.status == "FAIL" for r in results), format_table(results)
