"""Each primitive's derivative rules proved against sympy.diff of its SymPy meaning.

    results = check_primitive("tanh")      # one Result per derivative function, all "pass"

For every example application in a record (`examples`: input types, attributes, domains),
a module is made with f(a0, a1, ...) = prim(...), its vjp (with NAME_fwd and NAME_bwd), its
jvp and the jvp of the vjp (second order), and the SymPy check (sympy_check.py) compares
each with sympy.diff. tests/test_symcheck.py runs it for the whole registry.
"""
from __future__ import annotations

from ..autodiff.directives import forward, reverse
from ..core.ir import Function, Module, current_hints, graph_scope
from ..core.nodes import apply, param
from ..core.primitive import REGISTRY
from ..core.source import SourceFile
from ..core.types import DType, TensorType
from .sympy_check import Checker, Result, whole


def parse_type_text(text: str):
    """"f64[2, 3]" -> TensorType (examples in the primitive table use literal sizes)."""
    name, _, rest = text.partition("[")
    dims = tuple(int(d) for d in rest.rstrip("]").split(",") if d.strip()) if rest else ()
    return TensorType(DType.from_name(name), dims)


DERIVATIVES = ("vjp", "jvp", "vjp_jvp")


def primitive_modules(name: str, derivatives=DERIVATIVES, examples: int | None = None):
    """For each example of a primitive (the first `examples` of them): a module with
    f(a0, a1, ...) = prim(...) and the derivatives asked for: its vjp (with NAME_fwd and
    NAME_bwd), its jvp, and the jvp of its vjp (the JVP rules of the ops the VJP rule emits:
    second order).

    Yields (module, domains by parameter name)."""
    prim = REGISTRY[name]
    for k, (types, attrs, domains) in enumerate(prim.examples[:examples]):
        with graph_scope():
            params, inputs = _inputs(types, domains)
            out = apply(name, *inputs, **attrs)
            fn = Function(f"{name}_{k}", tuple(params), (out,), None)
            wrt = [i for i, p in enumerate(params) if p.dtype.is_float]
            fns = [fn]
            if wrt:
                rev = reverse("vjp", f"{name}_{k}_vjp", fn, wrt, None)
                if "vjp" in derivatives or "vjp_jvp" in derivatives:
                    fns += rev
                if "jvp" in derivatives:
                    fns += forward(f"{name}_{k}_jvp", fn, wrt, None)
                if "vjp_jvp" in derivatives:
                    fns += forward(f"{name}_{k}_vjp_jvp", rev[0], wrt, None)
            yield Module(SourceFile(f"<{name}>", ""), tuple(fns), current_hints()), \
                {f"a{i}": d for i, d in domains.items() if isinstance(d, str)}


def _inputs(types, domains):
    """The parameters, and the inputs they give: an input whose domain is a pair (op, k) is
    computed, op(input k), not a parameter (spd.py's records take a matrix and its factor)."""
    params, inputs = [], []
    for i, t in enumerate(types):
        d = domains.get(i)
        if isinstance(d, tuple):
            inputs.append(apply(d[0], inputs[d[1]]))
        else:
            params.append(param(f"a{i}", parse_type_text(t), len(params)))
            inputs.append(params[-1])
    return params, inputs


def check_primitive(name: str, derivatives=DERIVATIVES, examples: int | None = None) -> list[Result]:
    """Each VJP (and JVP) rule of a primitive against sympy.diff of its SymPy meaning."""
    results = []
    for module, domains in primitive_modules(name, derivatives, examples):
        checker = Checker(module, {}, domains)
        results += [checker.check(f) for f in module.functions if whole(f)]
    return results
