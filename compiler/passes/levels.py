"""The optimisation levels: the passes of each, in order. A pass is a function from Module
to Module, one file each in this folder.

    -O0   nothing: the IR as lowering and differentiation built it
    -O1   expand (stable composites in primitives), fold (constants), simplify (named
          algebraic rules, to a fixed point), cse, negations (into scalar factors of
          products no other value reads)
    -O2   as -O1, then residuals (fewer values saved by _fwd when recomputing is cheap) and
          checkpoint (a loop's gradient keeps sqrt(n) carries, not n iterations' values)

Code generation then plans memory (in-place ufuncs into dead temporaries) and runs long
elementwise chains in cache-sized blocks (codegen/fused/); those are not IR passes.
`verify` runs after every pass in the tests, and after every pass when TAPELESS_VERIFY=1.
"""
from __future__ import annotations

import os

from ..core.ir import Module
from .checkpoint import checkpoint
from .cse import cse
from .expand import expand
from .fold import fold
from .loop_bodies import with_bodies
from .negations import negations
from .residuals import fewer_residuals
from .simplify import simplify
from .verify import verify

PIPELINE: dict[int, tuple] = {
    0: (),
    1: (expand, fold, simplify, cse, negations),
    2: (expand, fold, simplify, cse, negations, fewer_residuals, checkpoint),
}


def optimize(module: Module, level: int = 1, check: bool | None = None, keep: frozenset = frozenset()) -> Module:
    """keep: the composites expand leaves whole (the backend's Backend.keeps)."""
    if level not in PIPELINE:
        raise ValueError(f"unknown optimisation level -O{level}; expected 0, 1 or 2")
    check = os.environ.get("TAPELESS_VERIFY") == "1" if check is None else check

    def run(module: Module) -> Module:
        for p in PIPELINE[level]:
            module = p(module, keep) if p is expand else p(module)
            if check:
                verify(module, after=p.__name__)
        return module

    return with_bodies(run)(module) if PIPELINE[level] else module
