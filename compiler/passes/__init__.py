"""Optimisation passes: functions from Module to Module, listed in order in PIPELINE.

The optimiser proper is separate work (see the project's issues); until then the
pipeline is empty at every level and `optimize` returns its input unchanged.
"""
from __future__ import annotations

from ..ir import Module

PIPELINE: dict[int, tuple] = {0: (), 1: (), 2: ()}


def optimize(module: Module, level: int = 1) -> Module:
    if level not in PIPELINE:
        raise ValueError(f"unknown optimisation level -O{level}; expected 0, 1 or 2")
    for p in PIPELINE[level]:
        module = p(module)
    return module
