"""The primitive table: every primitive carries every facet it must have, side by side."""
from __future__ import annotations

import pytest

from tapeless.compiler.builtins import BUILTINS
from tapeless.compiler.primitives import REGISTRY

FACETS = ("infer", "emit", "vjp", "jvp", "sympy")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_primitive_has_every_facet(name):
    prim = REGISTRY[name]
    missing = [f for f, ok in prim.facets().items() if not ok]
    assert not missing, f"primitive `{name}` lacks {', '.join(missing)}"


def test_non_differentiable_primitives_are_exactly_the_expected_ones():
    """A rule missing is not the same as `not differentiable`: the latter is a short, reviewed list."""
    nondiff = sorted(n for n, p in REGISTRY.items() if not p.differentiable)
    assert nondiff == ["eq", "ge", "gt", "le", "logical_and", "logical_not", "logical_or", "lt", "ne", "onehot"]


def test_every_builtin_is_covered_by_the_catalogue():
    from catalogue import CASES

    used = " ".join(c.expr for c in CASES)
    missing = [b for b in BUILTINS if b not in used and b not in ("i32", "i64", "bool", "f16")]
    assert not missing, f"built-ins without a catalogue case: {missing}"


def test_facet_check_fails_for_an_incomplete_record():
    from tapeless.compiler.primitives.base import Primitive

    p = Primitive("fake", "elementwise", infer=lambda t, a: t[0])
    assert not all(p.facets().values())
