"""The IR verifier: run after every pass in the tests (and with TAPELESS_VERIFY=1).

Checks that each node's type is what its primitive's rule gives for its inputs, that a
function reads only its own parameters, and that a _fwd/_bwd pair still fits (as many
residuals as _bwd takes). On failure it prints the IR around the bad node.
"""
from __future__ import annotations

from ..core.derivative import Part
from ..core.ir import Function, Module, Node, topo_order
from ..core.ir_text import format_function
from ..core.primitive import Kind


class VerifyError(AssertionError):
    pass


def verify(module: Module, after: str = "") -> Module:
    for fn in module.functions:
        params = {p.id for p in fn.params}
        for n in topo_order(fn.outputs):
            if n.is_param:
                if n.id not in params:
                    _fail(module, fn, n, f"reads parameter `{n.attr('name')}` of another function", after)
                continue
            if n.is_literal or n.op.kind is Kind.CONSTRUCTOR:
                continue  # leaves and constructors carry the type they were given
            want = n.op.infer([i.type for i in n.inputs], dict(n.attrs))
            if (want.dtype, want.shape) != (n.dtype, n.shape):
                _fail(module, fn, n, f"has type {n.type} but its rule gives {want}", after)
        d = fn.derivative
        if d is not None and (len(d.params), len(d.outputs)) != (len(fn.params), len(fn.outputs)):
            _fail(module, fn, None, f"has {len(fn.params)} parameters and {len(fn.outputs)} outputs but its record "
                            f"describes {len(d.params)} and {len(d.outputs)}", after)
        if d is not None and d.part is Part.FWD:
            bwd = module.pair(fn)[1]
            n_res = len(fn.outputs) - d.n_primal_outputs
            if n_res != bwd.derivative.n_residuals:
                _fail(module, fn, None, f"returns {n_res} residuals but the _bwd takes "
                                        f"{bwd.derivative.n_residuals}", after)
    return module


def _fail(module: Module, fn: Function, node: Node | None, message: str, after: str) -> None:
    where = f" after pass `{after}`" if after else ""
    what = f"node {node!r} " if node is not None else ""
    text = format_function(fn, module.hints)
    raise VerifyError(f"IR verification failed{where} in `{fn.name}`: {what}{message}\n{text}")
