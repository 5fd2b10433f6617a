"""The compiler's stages, spelled once. Stage names are `tapeless ir --stage` names.

    parsed     text -> AST                        parse.parse
    typed      AST -> typed IR (forward fns)      lower.lower_module
    adjoint    + derivative functions             (directives, expanded while lowering)
    optimized  + passes                           passes.optimize
    source     IR -> Python                       codegen.emit.generate

Each stage is a plain function of the previous one's value. Errors in user
input are collected and raised together as one CompileError.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

from .primitives import catalog  # noqa: F401  (the primitive table: every rule, loaded once)
from .core import ir_text as ir_print
from .frontend import syntax
from .codegen.emit import Options, generate
from .core.diagnostics import CompileError, Diagnostic, Sink
from .core.ir import Module
from .frontend.lower import lower_module
from .frontend.parse import parse
from .core.source import SourceFile

VERSION = "0.1.0"
STAGES = ("parsed", "typed", "adjoint", "optimized")
BACKENDS = ("numpy", "cupy")


def _check(sink: Sink, source: SourceFile) -> None:
    if sink.has_errors:
        raise CompileError(sink.sorted(), source)


def parse_stage(source: SourceFile) -> syntax.Module:
    sink = Sink()
    tree = parse(source, sink)
    _check(sink, source)
    return tree


def ir_stage(source: SourceFile, float64: bool = False) -> Module:
    sink = Sink()
    with _deep_recursion(source):
        tree = parse(source, sink)  # items with syntax errors are left out, the rest is still checked
        module = lower_module(source, tree, sink, float64=float64)
    _check(sink, source)
    return module


@contextlib.contextmanager
def _deep_recursion(source: SourceFile, limit: int = 20000):
    """Lowering recurses once per level of nesting (a 300-term sum is 300 levels): room for
    deep expressions, and a located error, not a crash, beyond that."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    except RecursionError:
        raise CompileError([Diagnostic(source.span(1, 1, 1, 2), "this file nests expressions or calls more "
                                       f"deeply than the compiler can follow ({limit} levels)")], source) from None
    finally:
        sys.setrecursionlimit(old)


def optimize_stage(module: Module, level: int = 1) -> Module:
    from .passes import optimize

    return optimize(module, level)


def compile_source(source: SourceFile | str, backend: str = "numpy", checks: bool = True,
                   opt_level: int = 1, path: str = "<string>", float64: bool = False) -> str:
    """Python source of the module compiled from `source` (a SourceFile or .tl text).

    `float64=True` reads every floating dtype as f64 (gradcheck's reference build)."""
    if isinstance(source, str):
        source = SourceFile.from_text(path, source)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    module = optimize_stage(ir_stage(source, float64=float64), opt_level)
    return generate(module, Options(backend=backend, checks=checks, opt_level=opt_level), VERSION)


def compile_file(path: str | os.PathLike, backend: str = "numpy", checks: bool = True, opt_level: int = 1,
                 display: str | None = None) -> str:
    source = SourceFile.read(str(path), display or os.path.basename(str(path)))
    return compile_source(source, backend=backend, checks=checks, opt_level=opt_level)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write text (UTF-8) or bytes to path through a temporary file and os.replace: never a partial file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as an ordinary new file (mkstemp makes it private)
        if isinstance(data, str):
            data = data.encode("utf-8")  # newlines stay "\n": generated code is written the same everywhere
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def compile_to_file(path, out=None, backend: str = "numpy", checks: bool = True, opt_level: int = 1) -> Path:
    """Compile `path` and write the module next to it (or to `out`), atomically."""
    path = Path(path)
    out = Path(out) if out is not None else path.with_suffix(".py")
    text = compile_file(path, backend=backend, checks=checks, opt_level=opt_level)
    write_atomic(out, text)
    return out


def stage_text(source: SourceFile, stage: str) -> str:
    """The printed form of one stage (`tapeless ir`)."""
    if stage == "parsed":
        return syntax.format_module(parse_stage(source))
    module = ir_stage(source)
    if stage == "typed":
        return ir_print.format_module(module, kinds=("fn",))
    if stage == "adjoint":
        return ir_print.format_module(module)
    if stage == "optimized":
        return ir_print.format_module(optimize_stage(module))
    raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
