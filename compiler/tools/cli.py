"""The `tapeless` command: compile | ir | check | graph | cache.

Exit status: 0 success, 1 errors in the user's input (each printed as
`file:line:col: error: ...` with the source line and carets), 2 an internal
error of the compiler (a bug: the message says so; TAPELESS_DEBUG=1 adds the
traceback).
"""
from __future__ import annotations

import argparse
import os
import stat
import sys
import traceback

from ..core.diagnostics import CompileError
from ..core.source import NotText, SourceFile
from ..pipeline import BACKENDS, STAGES, VERSION, compile_file, write_atomic
from .ir import stage_text


class InputError(Exception):
    """A problem with the command line or the files named (not with .tl source)."""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        """A usage mistake is the user's: exit status 1, as every other input error (2 is a bug)."""
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def version() -> str:
    """The installed distribution's version; the compiler's own when tapeless runs from a checkout
    that was never installed (PYTHONPATH)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("tapeless")
    except PackageNotFoundError:
        return VERSION


class _Version(argparse.Action):
    """--version, looked up only when asked for (reading the installed metadata costs a directory scan)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print tapeless's version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(f"tapeless {version()}\n")
        parser.exit(0)


def _parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(prog="tapeless", description="Ahead-of-time differentiation of tensor code.")
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compile", help="compile a .tl file to a Python module")
    c.add_argument("file")
    c.add_argument("-o", "--output", help="output path (default: FILE with .py; '-' for standard output)")
    c.add_argument("--backend", choices=BACKENDS, default="numpy")
    c.add_argument("--no-checks", action="store_true", help="leave argument validation out of the module")
    c.add_argument("-O", dest="opt", type=int, choices=(0, 1, 2), default=1, help="optimisation level")

    i = sub.add_parser("ir", help="print the IR of a .tl file at one stage")
    i.add_argument("file")
    i.add_argument("--stage", choices=STAGES, default="typed")

    k = sub.add_parser("check", help="cross-check every derivative against SymPy")
    k.add_argument("file")
    k.add_argument("--sizes", default="", help="sizes for symbols, e.g. N=3,M=2")

    g = sub.add_parser("graph", help="draw the forward and adjoint graphs of a function (Graphviz)")
    g.add_argument("file")
    g.add_argument("--fn", required=True, metavar="NAME",
                   help="a fn (drawn with its derivatives) or a derivative function (NAME, NAME_fwd, NAME_bwd)")
    g.add_argument("-o", "--output", metavar="OUT",
                   help="OUT.dot or .gv (DOT text), .svg or .png (through Graphviz's dot); "
                        "default: DOT on standard output")
    g.add_argument("--stage", choices=("typed", "adjoint", "optimized"), default="adjoint")
    g.add_argument("--collapse", choices=("none", "statements"), default="none",
                   help="statements: one box per source statement (large graphs)")

    a = sub.add_parser("cache", help="show, clear or prune the cache of compiled modules that load() uses")
    a.add_argument("action", choices=("info", "clear", "prune"),
                   help="info: location, entries, size, cap; clear: remove every entry; "
                        "prune: remove damaged entries, orphaned temporary files and what exceeds the cap")
    return p


def _read(path: str) -> SourceFile:
    try:
        return SourceFile.read(path, path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except NotText as e:
        raise InputError(str(e)) from None
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None


def _check_output(out: str, source: str) -> None:
    """Refuse an output path that is the source (under any name) or not a regular file: the
    atomic write replaces the path, so it would put a file where a device (/dev/null) was."""
    try:
        st = os.stat(out)
    except OSError:
        return  # a new file: write_atomic reports a missing directory
    if os.path.samefile(out, source):
        raise InputError(f"{out}: refusing to overwrite the source file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{out}: not a regular file (writing replaces it); name a file, or '-' for standard output")


def _compile(args) -> int:
    _read(args.file)  # a readable-file error reads better than one from deep inside
    text = compile_file(args.file, backend=args.backend, checks=not args.no_checks, opt_level=args.opt,
                        display=args.file)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    out = args.output or os.path.splitext(args.file)[0] + ".py"
    _check_output(out, args.file)
    try:
        write_atomic(out, text)
    except OSError as e:
        raise InputError(f"{out}: cannot write: {e.strerror}") from None
    return 0


def _ir(args) -> int:
    sys.stdout.write(stage_text(_read(args.file), args.stage))
    return 0


def _check(args) -> int:
    from .check import run_check_command

    return run_check_command(args.file, args.sizes)


def _graph(args) -> int:
    from .graph import GraphError, graph_command

    source = _read(args.file)
    if args.output not in (None, "-"):
        _check_output(args.output, args.file)
    try:
        return graph_command(source, args.fn, args.output, args.stage, args.collapse)
    except GraphError as e:
        raise InputError(str(e)) from None


def _cache(args) -> int:
    from tapeless.runtime.cache_maintenance import cache_command  # (the command line sits above the runtime)

    try:
        sys.stdout.write(cache_command(args.action))
    except ValueError as e:
        raise InputError(str(e)) from None
    return 0


COMMANDS = {"compile": _compile, "ir": _ir, "check": _check, "graph": _graph, "cache": _cache}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CompileError as e:
        sys.stderr.write(e.report() + "\n")
        return 1
    except InputError as e:
        sys.stderr.write(f"tapeless: error: {e}\n")
        return 1
    except NotImplementedError as e:
        sys.stderr.write(f"tapeless: error: {e}\n")
        return 1
    except KeyboardInterrupt:  # pragma: no cover
        return 130
    except Exception as e:  # a bug in tapeless, never the user's fault
        sys.stderr.write(f"tapeless: internal error: {type(e).__name__}: {e}\n"
                         "This is a bug in tapeless; please report it with the input file.\n")
        if os.environ.get("TAPELESS_DEBUG"):
            traceback.print_exc()
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
