"""`__tapeless__` declares every function's argument and result types (in_types, out_types),
and tapeless.runtime.signature evaluates them: for every program of the corpus, the declared
result types are what each function returns, for NAME_fwd its outputs and residuals too."""
from __future__ import annotations

import numpy as np
import pytest

from corpus import PROGRAMS, inputs_for
from tapeless.runtime.signature import bind_sizes, dims_text, entry_of, result_types


def flat_results(info: dict, result) -> list:
    if info["kind"] == "fwd":
        outputs, residuals = result
        outputs = list(outputs) if info["n_outputs"] > 1 or isinstance(outputs, tuple) else [outputs]
        return outputs + list(residuals)
    if not isinstance(result, tuple):
        return [result]
    flat = []
    for r in result:  # gradients come as a tuple after the value (LANGUAGE.md §7)
        flat += list(r) if isinstance(r, tuple) else [r]
    return flat


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_declared_result_types_are_what_functions_return(path, tl):
    text = path.read_text()
    m = tl(text, path=path.name)
    seen = 0
    for name, info in m.__tapeless__.items():
        if info["kind"] == "bwd":
            continue
        args = inputs_for(m, name, text)
        entry_name, entry = entry_of(getattr(m, name))
        assert entry_name == name and len(entry["in_types"]) == len(entry["params"]) == len(args)
        declared = result_types(name, entry, [np.shape(a) for a in args])
        got = flat_results(info, getattr(m, name)(*args))
        assert len(got) == len(declared), name
        for k, ((dtype, shape), value) in enumerate(zip(declared, got)):
            value = np.asarray(value)
            assert (value.dtype, value.shape) == (dtype, shape), f"{name} result {k}"
        seen += 1
    assert seen


def test_sizes_bind_from_arguments_and_disagreements_are_named(tl):
    m = tl("fn f(x: f32[N, 3], y: f32[N]) -> f32 { return sum(tanh(x[1:] @ y[:3])) + sum(y) }\ngrad f wrt x\n")
    name, entry = entry_of(m.f_grad_fwd)
    assert bind_sizes(name, entry, [(5, 3), (5,)]) == {"N": 5}
    with pytest.raises(ValueError, match=r"f_grad_fwd: argument 'y' has N = 4, but an earlier argument has N = 5"):
        bind_sizes(name, entry, [(5, 3), (4,)])
    with pytest.raises(ValueError, match=r"argument 'x' should have shape \[N, 3\], got \(5, 2\)"):
        bind_sizes(name, entry, [(5, 2), (5,)])
    with pytest.raises(ValueError, match="rank 1"):
        bind_sizes(name, entry, [(5, 3), (5, 1)])
    # a residual of size N - 1 (tanh of x[1:] @ y[:3])
    k = next(k for k, (_, dims) in enumerate(entry["out_types"]) if dims and not isinstance(dims[0], (int, str)))
    assert dims_text(entry["out_types"][k][1]) == "[-1 + N]"
    assert result_types(name, entry, [(5, 3), (5,)])[k] == (np.dtype(np.float32), (4,))


def test_entry_of_refuses_other_functions():
    with pytest.raises(TypeError, match="not a function of a tapeless-generated module"):
        entry_of(np.sum)


def test_the_backend_is_read_off_the_module_imports(tl, tmp_path):
    from test_cupy_backend import import_cupy_module
    from tapeless.compiler import compile_source
    from tapeless.runtime.signature import backend_of

    source = "fn cp(x: f32) -> f32 { return x * x }\ngrad cp wrt x\n"  # a function named as CuPy's alias
    assert backend_of(tl(source).cp_grad) == "numpy"
    assert backend_of(import_cupy_module(compile_source(source, backend="cupy", path="c.tl"), tmp_path,
                                         "standin").cp_grad) == "cupy"
