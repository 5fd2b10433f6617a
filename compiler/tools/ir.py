"""`tapeless ir`: the program printed at one stage of the pipeline.

    parsed     the AST, as the parser read it (frontend/syntax.py's text form)
    typed      the functions of the file as typed IR (core/ir_text.py)
    adjoint    and every derivative function
    optimized  after the -O1 passes
"""
from __future__ import annotations

from .. import pipeline
from ..core import ir_text
from ..core.source import SourceFile
from ..frontend import syntax

STAGES = pipeline.STAGES


def stage_text(source: SourceFile, stage: str) -> str:
    """The printed form of one stage."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    parsed = pipeline.parse_stage(source)
    if stage == "parsed":
        pipeline.check(parsed.sink, source)
        return syntax.format_module(parsed.tree)
    program = pipeline.typed_stage(parsed)
    if stage == "typed":
        return ir_text.format_module(program.typed)
    module = pipeline.adjoint_stage(program)
    if stage == "optimized":
        module = pipeline.optimize_stage(module)
    return ir_text.format_module(module)
