"""A fn may take a built-in's name: in its file the name calls the fn (docs/language.md,
Functions), so a new built-in never breaks a file that already uses the name."""
from __future__ import annotations

import numpy as np
import pytest
from tapeless.compiler import CompileError, compile_source


def test_a_fn_named_like_a_builtin_is_called_in_its_file(tl):
    m = tl("fn square(x: f64[3]) -> f64[3] {\n    return x + 1\n}\n"
           "fn f(x: f64[3]) -> f64 {\n    return sum(square(x))\n}\ngrad f wrt x\n")
    x = np.array([1.0, 2.0, 3.0])
    value, dx = m.f_grad(x)
    assert value == pytest.approx(9.0)  # x + 1 summed, not x * x
    np.testing.assert_array_equal(dx, np.ones(3))


def test_the_builtin_is_still_there_in_other_files(tl):
    m = tl("fn f(x: f64[3]) -> f64 {\n    return sum(square(x))\n}\ngrad f wrt x\n")
    value, dx = m.f_grad(np.array([1.0, 2.0, 3.0]))
    assert value == pytest.approx(14.0)
    np.testing.assert_array_equal(dx, [2.0, 4.0, 6.0])


def test_a_directive_may_name_its_function_like_a_builtin(tl):
    m = tl("fn f(x: f64) -> f64 {\n    return x * x\n}\ngrad f wrt x as exp\n"
           "fn g(x: f64) -> f64 {\n    y, d = exp(x)\n    return d\n}\n")
    assert m.exp(3.0)[1] == pytest.approx(6.0)
    assert m.g(3.0) == pytest.approx(6.0)


def test_a_name_defined_twice_is_still_an_error():
    with pytest.raises(CompileError, match="defined twice"):
        compile_source("fn exp(x: f64) -> f64 {\n    return x\n}\nfn exp(x: f64) -> f64 {\n    return x\n}\n")
