"""`tapeless check` on the programs that once made it wrong or slow (issue #15): folded
constants compared without their rounding, prod and max reductions that took minutes or were
skipped at ties, a chain of statements that ended in RecursionError, 0 ** y, a division by zero
at a drawn point, and x ** 0 whose NaN gradient at 0 was never looked at."""
from __future__ import annotations

import dataclasses
import textwrap

import mpmath

from tapeless.compiler import pipeline
from tapeless.compiler.core.primitive import REGISTRY
from tapeless.compiler.core.source import SourceFile
from tapeless.compiler.primitives import algebra as B
from tapeless.compiler.primitives.common import numpy_pow_number
from tapeless.compiler.tools.sympy_check import check_module


def _check(text: str, sizes=None):
    text = textwrap.dedent(text)
    return check_module(pipeline.ir_stage(SourceFile.from_text("t.tl", text)), text, sizes)


def _replace(monkeypatch, name: str, **rules) -> None:
    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(REGISTRY[name], **rules))


def test_folded_f32_constants_pass_within_their_rounding_and_say_so():
    """1/6 and the mean's 1/3 are folded to float32 in the derivative: compared with the exact
    values they differ by 2e-8 relative, which the check allows and names (it FAILed)."""
    for r in _check("""
        fn f(x: f32[N]) -> f32 { return sum(x * x) / 6.0 }
        grad f wrt x
        fn g(x: f32[3]) -> f32 { return mean(x * x) }
        grad g wrt x
        """):
        assert r.status == "pass", r.detail
        assert "within the rounding of its folded f32 constants" in r.detail and "within rounding" in r.method


def test_folded_f64_constants_pass():
    results = _check("""
        # domain p: unit
        # domain x: positive
        fn f(p: f64[3], y: f64[3]) -> f64 { return mean(binary_cross_entropy(p, y)) }
        grad f wrt p
        fn g(x: f64) -> f64 { return 3.0 * log(x) / log(2.0) }
        grad g wrt x
        fn h(x: f64[N]) -> f64 { return sum(2.0 ** x) }
        grad h wrt x
        """)
    assert [r.status for r in results] == ["pass"] * 3, [r.detail for r in results]


def test_the_rounding_allowance_still_catches_a_rule_off_by_a_thousandth(monkeypatch):
    """The allowance is the constants' own rounding error (2^-24 relative in f32, carried to
    each value to first order), not a loose tolerance: a rule 0.1% off fails in f32."""
    prim = REGISTRY["div"]

    def slightly_wrong(ctx, node, ct, needs):
        return [None if g is None else B.mul(g, B.like_const(1.001, g)) for g in prim.vjp(ctx, node, ct, needs)]

    _replace(monkeypatch, "div", vjp=slightly_wrong)
    (r,) = _check("fn f(x: f32[N]) -> f32 { return sum(x * x) / 6.0 }\nvjp f wrt x\n")
    assert r.status == "FAIL" and "d/dx[0]" in r.detail


def test_prod_and_tied_max_min_are_verified_at_their_special_points():
    """prod with zeros in a slice and max/min with ties are checked there (not skipped, and in
    seconds: the [3, 4] prod took minutes)."""
    results = _check("""
        fn f(x: f64[3, 4]) -> f64[3] { return prod(x, axis=1) }
        vjp f wrt x
        fn g(x: f64[3, 4]) -> f64[4] { return min(x, axis=0) }
        vjp g wrt x
        fn h(x: f64[3, 4]) -> f64 { return max(x) }
        grad h wrt x
        """)
    assert [r.status for r in results] == ["pass"] * 3, [r.detail for r in results]
    assert all("special" in r.method for r in results), [r.method for r in results]


def test_a_broken_tie_convention_is_caught(monkeypatch):
    """Ties of a max reduction share the gradient equally (docs/language.md): a rule that gives
    the whole gradient to every tied entry agrees everywhere but at a tie, where the check FAILs."""
    def every_tied_entry(ctx, node, ct, needs):
        x = node.inputs[0]
        hit = B.apply("eq", x, B.broadcast_to(B.reshape(node, (x.shape[0], 1)), x.shape))
        return [B.masked(hit, B.broadcast_to(B.reshape(ct, (x.shape[0], 1)), x.shape))]

    _replace(monkeypatch, "max", vjp=every_tied_entry)
    (r,) = _check("fn f(x: f64[3, 4]) -> f64[3] { return max(x, axis=1) }\nvjp f wrt x\n")
    assert r.status == "FAIL" and "at the special point max: a tie at the max (line 1)" in r.detail


def test_a_long_chain_is_checked_on_the_graph():
    """a = tanh(a) * x + 0.5 repeated: 50 statements ended in RecursionError (reported as 'try
    other sizes'); the values are computed node by node, shared subexpressions once."""
    body = "\n".join(["    a = x"] + ["    a = tanh(a) * x + 0.5"] * 120)
    (r,) = _check(f"fn f(x: f64[N]) -> f64 {{\n{body}\n    return sum(a)\n}}\ngrad f wrt x\n")
    assert r.status == "pass", r.detail


def test_zero_to_a_power_has_numpy_values_and_pytorch_derivatives():
    """0.0 ** y was compared with SymPy's nan (0 * log 0): the meaning of pow is NumPy's at 0
    (0, 1 or inf) and its derivative PyTorch's (0 where y >= 0), checked at y = 0 too."""
    (r,) = _check("fn f(y: f64[N]) -> f64 { return sum(0.0 ** y) }\ngrad f wrt y\n")
    assert r.status == "pass" and "special" in r.method, r.detail


def test_x_to_the_zero_is_evaluated_at_zero(monkeypatch):
    """d/dx x ** 0 is 0 (PyTorch); the rule once gave 0 * x ** -1, NaN at x = 0, and the check
    passed it because it never drew 0. The special point of pow (base 0) catches the old rule."""
    text = "fn f(x: f64[N]) -> f64 { return sum(x ** 0.0) }\ngrad f wrt x\n"
    (r,) = _check(text)
    assert r.status == "pass" and "special" in r.method, r.detail

    def old_rule(ctx, node, ct, needs):  # b * a ** (b - 1) for every b, as before
        a, b = node.inputs
        d = B.mul(b, B.pow_(a, B.like_const(b.attr("value") - 1, b)))
        return [B.unbroadcast(B.mul(ct, d), a.type), None]

    _replace(monkeypatch, "pow", vjp=old_rule)
    (r,) = _check(text)
    assert r.status == "FAIL", r.detail
    assert "sympy.diff gives 0\n    tapeless gives nan" in r.detail and "at the special point pow: base 0" in r.detail


def test_a_point_on_a_pole_is_drawn_again():
    """relu(x) / (x - 1) at a drawn x = 1 raised ZeroDivisionError ('could not be checked'); the
    arithmetic is IEEE's now and a point where the reference is not finite is replaced."""
    (r,) = _check("fn f(x: f64[N]) -> f64 { return sum(relu(x) / (x - 1.0)) }\ngrad f wrt x\n", {"N": 5})
    assert r.status == "pass", r.detail


def test_a_function_that_is_never_finite_is_skipped_with_the_reason():
    (r,) = _check("fn f(x: f64[N]) -> f64 { return sum(x / (x - x)) }\ngrad f wrt x\n")
    assert r.status == "skipped"
    assert "not finite at any point drawn at sizes {'N': 2} (value of output 0 is +inf at x = [" in r.detail


def test_the_generated_gradient_of_a_power_at_zero_is_pytorchs(tl):
    """What the check now holds the rule to, in the generated code: d/dx x ** 0 is 0 at x = 0
    (it was NaN), also for an exponent that is an argument equal to 0; other exponents keep
    b x^(b-1) (inf for b = 0.5 at 0, as in PyTorch)."""
    import numpy as np

    m = tl("fn f(x: f64[N]) -> f64 { return sum(x ** 0.0) }\ngrad f wrt x\n"
           "fn g(x: f64[N], y: f64[N]) -> f64 { return sum(x ** y) }\ngrad g wrt x, y\n")
    with np.errstate(all="ignore"):
        assert np.array_equal(m.f_grad(np.array([0.0, 2.0]))[1], [0.0, 0.0])
        _, dx, dy = m.g_grad(np.array([0.0, 0.0, 0.0, 2.0]), np.array([0.0, 0.5, 2.0, 0.0]))
    assert np.array_equal(dx, [0.0, np.inf, 0.0, 0.0])
    assert np.array_equal(dy, [0.0, 0.0, 0.0, np.log(2.0)])


def test_calls_kept_as_calls_are_checked_through_their_bodies():
    """A fn of more than 64 operations is called, not inlined (primitives/call.py); the check
    differentiates the caller with the calls expanded, as the directive did."""
    body = "\n".join(["    a = x"] + ["    a = tanh(a) * x + 0.5"] * 24)
    results = _check(f"fn g(x: f64[N]) -> f64[N] {{\n{body}\n    return a\n}}\n"
                     "fn f(x: f64[N]) -> f64 { return sum(g(g(x) * 0.5) + g(x)) }\ngrad f wrt x\n")
    assert [r.status for r in results] == ["pass"], [r.detail for r in results]


def test_std_with_ddof_is_checked():
    """std(x, ddof=1) ran past 30 s; its [3, 4] VJP and a full reduction are checked now."""
    results = _check("""
        fn f(x: f64[3, 4]) -> f64[3] { return std(x, axis=1, ddof=1) }
        vjp f wrt x
        fn g(x: f64[N]) -> f64 { return std(x, ddof=1) }
        grad g wrt x
        """)
    assert [r.status for r in results] == ["pass"] * 2, [r.detail for r in results]


def test_a_size_that_divides_by_zero_is_skipped_with_the_reason():
    """At the sampled N = 2, N - 2 is 0 (a ZeroDivisionError, once reported as 'could not be
    checked'): skipped, naming the sizes; at N = 3 it is checked."""
    text = "fn f(x: f64[N]) -> f64 { return sum(x * x) / (N - 2) }\ngrad f wrt x\n"
    (r,) = _check(text)
    assert r.status == "skipped" and "not finite at any point drawn at sizes {'N': 2}" in r.detail, r.detail
    (r,) = _check(text, {"N": 3})
    assert r.status == "pass", r.detail


def test_fuzz3_a_subnormal_f32_exponent_is_checked():
    """tan(x) ** 1e-45 in f32 (1e-45 is the subnormal 2^-149) with an hvp ran past 100 s."""
    (r,) = _check("fn f(x: f32) -> f32 { return tan(x) ** 1e-45 }\nhvp f wrt x\n")
    assert r.status == "pass", r.detail


def test_a_constant_rounded_to_a_round_number_is_allowed_its_rounding():
    """The pow rule holds b - 1: for b = 1e-8 in f32 (1e-7 in f16) that rounds to exactly -1.0,
    and 1 / 1e-38 to a float with no fraction. Each is a rounded constant all the same."""
    results = _check("""
        fn f(x: f32) -> f32 { return tan(x) ** 1e-8 }
        grad f wrt x
        fn g(x: f16) -> f16 { return tan(x) ** 1e-7 }
        hvp g wrt x
        fn h(x: f32) -> f32 { return exp(x * 1e-45) / 1e-38 }
        hvp h wrt x
        """)
    assert [r.status for r in results] == ["pass"] * 3, [r.detail for r in results]
    assert all("within the rounding of its folded" in r.detail for r in results), [r.detail for r in results]


def test_values_beyond_the_dtype_agree_as_the_dtype_holds_them(monkeypatch):
    """x * 1e20 * 1e20 * 1e20 in f32: the derivative folds the constants' product to inf, the
    exact gradient is 1e60; f32 holds both as inf. A rule that gets the sign wrong still fails."""
    text = "fn f(x: f32) -> f32 { return x * 1e20 * 1e20 * 1e20 }\ngrad f wrt x\n"
    (r,) = _check(text)
    assert r.status == "pass" and "beyond the range of f32" in r.detail, r.detail
    prim = REGISTRY["mul"]

    def negated(ctx, node, ct, needs):
        return [None if g is None else B.neg(g) for g in prim.vjp(ctx, node, ct, needs)]

    _replace(monkeypatch, "mul", vjp=negated)
    (r,) = _check(text)
    assert r.status == "FAIL" and "d/dx" in r.detail, r.detail


def test_a_value_returned_twice_is_checked():
    """`return x, x` with a vjp: both cotangents reach x and are summed. A change to the
    reference once stopped it with AttributeError ('mpf' object has no attribute 'copy'),
    reported as "could not evaluate it at these sizes" (fuzz input #300 of the CI profile)."""
    results = _check("""
        fn f(x: f64) -> (f64, f64) { return x, x }
        vjp f wrt x
        fn g(x: f64[3]) -> (f64[3], f64, f64[3]) { return x, sum(x), x }
        vjp g wrt x
        """)
    assert [r.status for r in results] == ["pass"] * 2, [r.detail for r in results]


def test_minimum_and_maximum_with_a_stop_gradient_operand_are_checked():
    """`minimum(stop_gradient(y), y)`: the check's evaluation of the tie convention named a
    variable it never defined (NameError: name 'sg0' is not defined, reported as "could not
    evaluate it"; long fuzz run, input #13440)."""
    results = _check("""
        fn f(y: f64) -> f64 { return minimum(stop_gradient(y), y) }
        grad f wrt y
        fn g(y: f64[3]) -> f64 { return sum(maximum(y, stop_gradient(y * 0.5)) * y) }
        grad g wrt y
        """)
    assert [r.status for r in results] == ["pass"] * 2, [r.detail for r in results]


def test_sign_passes_nothing_back_even_an_infinite_derivative():
    """sign(x ** 1e-3) at the special point x = 0, where the pow's derivative is inf: sign's
    derivative, sympy.diff's 2 DiracDelta(x), is no path at all (the generated code, like
    PyTorch, gives 0), but the reference multiplied it out, 0 * inf = nan, and the check
    FAILed (long fuzz run, input #37872)."""
    results = _check("""
        fn f(x: f32) -> f32 { return sign(x ** 1e-3) }
        grad f wrt x
        jvp f wrt x
        hvp f wrt x
        """)
    assert [r.status for r in results] == ["pass"] * 3, [r.detail for r in results]
    assert all("special" in r.method for r in results), [r.method for r in results]


def test_a_power_tower_is_checked():
    """v ** v ** ... ** v (30 and 60 levels) made an integer exponent with more bits than
    memory holds: mpmath wrote it out and squared that many times, ending in MemoryError or
    "too many digits in integer" after minutes ("could not evaluate it"; long fuzz run,
    inputs #38760 and #44560). Such a power is exp(b log|a|) with b's parity, or inf or 0."""
    tower = " ** ".join(["x"] * 30)
    results = _check(f"""
        fn f(x: f64[N]) -> (f64, f64[N]) {{ x = exp(x)\n return sum(x), {tower} }}
        vjp f wrt x
        fn g(x: f32, y: f32) -> f32 {{ v = x * y\n return {" ** ".join(["v"] * 60)} }}
        jvp g wrt x
        """)
    assert [r.status for r in results] == ["pass"] * 2, [r.detail for r in results]
    with mpmath.workdps(60):  # (as the check computes: 2 ** 65 + 1 is exact)
        big = mpmath.mpf(2) ** 65
        assert numpy_pow_number(-1, big + 1) == -1 and numpy_pow_number(-1, big) == 1
        assert numpy_pow_number(-3, big + 1) == -mpmath.inf and numpy_pow_number(0.5, big) == 0


def test_sizes_too_large_for_the_check_are_skipped_with_the_reason():
    """An input of [2, 2 ** 63 - 1] elements got past the cap (np.prod wrapped round to a
    negative count) and a broadcast to [2147483647, 2] asked for 32 GiB: both ended as "could
    not evaluate it" (long fuzz run, inputs #48800 and #45992). Both are skipped, saying why
    (the first counts x and its tangent)."""
    results = _check("""
        fn f(x: f32[2, 9223372036854775807]) -> f32 { return sum(stop_gradient(x) * 2.0) }
        jvp f wrt x
        fn g(y: f64[2]) -> f64 { return sum(softmax(broadcast_to(y, [2147483647, 2]), axis=-2)) }
        grad g wrt y
        """)
    assert [r.status for r in results] == ["skipped"] * 2, [r.detail for r in results]
    assert "36893488147419103228 input elements at sizes {} exceed the cap of 400" in results[0].detail
    assert "a value of 4294967294 elements (line 4) at sizes {} exceeds the cap of 100000" in results[1].detail


def test_an_array_with_no_elements_is_checked_by_its_shape():
    """x: f32[0] has an empty gradient, which the check reported as "does not know what d/dx
    should be" (long fuzz run, input #26576): it passes, by its shape, and says so."""
    results = _check("""
        fn f(x: f32[0], y: f32[2]) -> f32 { return sum(x * x) + sum(y * y) }
        vjp f wrt x, y
        grad f wrt x
        """)
    assert [r.status for r in results] == ["pass"] * 2, [r.detail for r in results]
    assert all("d/dx with no elements at these sizes (their shapes agree)" in r.detail for r in results)


def test_cumprod_second_derivatives_pass_at_zeros():
    """cumprod's hvp (and jvp of its gradient) at one and two zeros in a line FAILed: the masks
    of its first derivative were constants to the second; its rules are linscans now."""
    results = _check("""
        fn f(x: f64[3, 4], w: f64[3, 4]) -> f64 { return sum(cumprod(x, axis=1) * w) }
        hvp f wrt x
        fn g(x: f64[4]) -> f64 { return sum(cumprod(x)) }
        grad g wrt x
        jvp g_grad wrt x
        """)
    assert [r.status for r in results] == ["pass"] * 3, [r.detail for r in results]
    assert all("special" in r.method for r in results), [r.method for r in results]
