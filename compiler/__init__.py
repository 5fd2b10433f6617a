"""tapeless.compiler: `.tl` source -> typed IR -> derivatives -> Python source.

    from tapeless.compiler import compile_source, compile_file
    text = compile_file("layer.tl", backend="numpy")

pipeline.py spells the stages; docs/language.md describes the language and
docs/architecture.md the house.
"""
from .core.diagnostics import CompileError
from .pipeline import VERSION, compile_file, compile_source, compile_to_file
from .tools.ir import stage_text

__all__ = ["CompileError", "VERSION", "compile_file", "compile_source", "compile_to_file", "stage_text"]
