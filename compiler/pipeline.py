"""The compiler's stages, spelled once. Stage names are `tapeless ir --stage` names.

    parsed     text -> AST                                    parse_stage     frontend/parse.py
    typed      AST -> typed IR: fns lowered, directives checked  typed_stage  driver.py, frontend/lower.py
    adjoint    + every derivative function                    adjoint_stage   driver.py, autodiff/
    optimized  + passes                                       optimize_stage  passes/
    source     IR -> Python                                   source_stage    codegen/emit.py

Each stage is a function of the previous stage's value, and nothing flows back: the typed
stage's value is the Program (driver.py), which the adjoint stage continues (its intern
table and names go on, so derivatives share the nodes of what they differentiate; a
derivative a fn calls was derived in the typed stage already). Errors in user input are
collected and raised together as one CompileError: a syntax error in one item does not hide
a type error in another (the parse stage hands its diagnostics on).
The tools (tools/: `tapeless ir`, `graph`, `check`) run these same stages.
"""
from __future__ import annotations

import contextlib
import gc
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# isort: off
from .primitives import catalog  # noqa: F401  (the primitive table: every rule, loaded once, first)
# isort: on
from .codegen.backends import BACKENDS as CODEGEN_BACKENDS
from .codegen.emit import Options, generate
from .core.diagnostics import CompileError, Diagnostic, Sink
from .core.ir import Module
from .core.source import SourceFile
from .driver import Program
from .frontend import syntax
from .frontend.parse import parse
from .passes.levels import optimize

VERSION = "0.1.0"
STAGES = ("parsed", "typed", "adjoint", "optimized")
BACKENDS = tuple(CODEGEN_BACKENDS)  # the names `--backend` takes


@dataclass
class Parsed:
    source: SourceFile
    tree: syntax.Module  # the items that parsed
    sink: Sink  # the syntax errors of the others


def check(sink: Sink, source: SourceFile) -> None:
    """Raise the diagnostics collected so far, if any is an error."""
    if sink.has_errors:
        raise CompileError(sink.sorted(), source)


def parse_stage(source: SourceFile) -> Parsed:
    sink = Sink()
    with _deep_recursion(source):
        tree = parse(source, sink)  # items with syntax errors are left out, the rest is still checked
    return Parsed(source, tree, sink)


def typed_stage(parsed: Parsed, float64: bool = False) -> Program:
    """Every fn lowered to typed IR and every directive checked; raises with every error of the
    file (syntax ones included). `float64=True` reads every floating dtype as f64 (gradcheck's
    reference build)."""
    program = Program(parsed.source, parsed.tree, parsed.sink, float64=float64)
    with _deep_recursion(parsed.source):
        program.type_all()
    check(parsed.sink, parsed.source)
    return program


def adjoint_stage(program: Program) -> Module:
    """The module with every derivative function the file's directives ask for."""
    with _deep_recursion(program.source):
        module = program.derive_all()
    check(program.sink, program.source)
    return module


def optimize_stage(module: Module, level: int = 1, keep: frozenset = frozenset()) -> Module:
    return optimize(module, level, keep=keep)


def source_stage(module: Module, options: Options) -> str:
    return generate(module, options, VERSION)


def ir_stage(source: SourceFile, float64: bool = False) -> Module:
    """parse, typed and adjoint: the IR of every function (what the SymPy check and graph read)."""
    with _no_cycle_collection():
        return adjoint_stage(typed_stage(parse_stage(source), float64=float64))


@contextlib.contextmanager
def _no_cycle_collection():
    """The cycle collector paused while compiling: the compiler makes few reference cycles but
    millions of objects that live until the end, which the collector walks again and again
    (15-25% of a 1,000-statement compile). Memory freed by reference counting is unaffected."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@contextlib.contextmanager
def _deep_recursion(source: SourceFile, limit: int = 20000):
    """Room for the recursion of the stages (lowering lowers a deep expression in slices, so it
    stays shallow) and a located error, not a crash, if it still runs out."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    except RecursionError as err:
        span = _innermost_expression(err, source)
        if span is None:
            raise CompileError([Diagnostic(source.span(1, 1, 1, 2), "the compiler ran out of recursion depth "
                                           f"({limit} Python frames) on this file")], source) from None
        raise CompileError([Diagnostic(span, "the compiler ran out of recursion depth here: this expression is "
                                       "nested too deeply for it to follow",
                                       ("assign parts of it to variables",))], source) from None
    finally:
        sys.setrecursionlimit(old)


def _innermost_expression(err: RecursionError, source: SourceFile):
    """The span of the innermost expression of this file a stage was working on when it ran out
    (a frame's `e`, as the lowering and parsing functions name it), or None."""
    span, tb = None, err.__traceback__
    while tb is not None:
        e = tb.tb_frame.f_locals.get("e")
        if isinstance(e, syntax.Expr) and e.span.file == source.path:
            span = e.span
        tb = tb.tb_next
    return span


def compile_source(source: SourceFile | str, backend: str = "numpy", checks: bool = True,
                   opt_level: int = 1, path: str = "<string>", float64: bool = False) -> str:
    """Python source of the module compiled from `source` (a SourceFile or .tl text).

    `float64=True` reads every floating dtype as f64 (gradcheck's reference build)."""
    if isinstance(source, str):
        source = SourceFile.from_text(path, source)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    with _no_cycle_collection():
        module = optimize_stage(ir_stage(source, float64=float64), opt_level, CODEGEN_BACKENDS[backend].keeps)
        return source_stage(module, Options(backend=backend, checks=checks, opt_level=opt_level))


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
