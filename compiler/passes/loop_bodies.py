"""Loop bodies are optimised as functions are: a pass over a module runs over the bodies of
its loops too (primitives/loops.py keeps a body as a Function in the loop's attributes, where
the module's own walk does not reach). Nested loops: the bodies' module has bodies of its own."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ..core.ir import Module, topo_order
from ..primitives.loops import Body, with_body
from .common import map_nodes


def with_bodies(run: Callable[[Module], Module]) -> Callable[[Module], Module]:
    """`run` (a pipeline) made to optimise every loop body it meets as well."""

    def over(module: Module) -> Module:
        module = run(module)
        bodies, sources = {}, {}
        for fn in module.functions:
            for n in topo_order(fn.outputs):
                body = n.attr("body") if n.op.group_vjp is not None else None
                if isinstance(body, Body):
                    bodies.setdefault(id(body.fn), body.fn)
                    sources.setdefault(id(body.fn), body.source)
        if not bodies:
            return module
        done = over(replace(module, functions=tuple(bodies.values())))
        new = {key: Body(fn, sources[key]) for key, fn in zip(bodies, done.functions)}

        def visit(n):
            body = n.attr("body") if n.op.group_vjp is not None else None
            return with_body(n, new[id(body.fn)]) if isinstance(body, Body) and id(body.fn) in new else n

        return map_nodes(replace(module, hints={**module.hints, **done.hints}), visit)

    return over
