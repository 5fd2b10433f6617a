"""`%%tapeless`: a notebook cell written in the tensor language, compiled and imported.

    %load_ext tapeless.runtime.ipython

    %%tapeless --name model
    fn f(x: f64[N]) -> f64 { return sum(x * x) }
    grad f wrt x

binds `f`, `f_grad`, `f_grad_fwd`, `f_grad_bwd` (the names of the module's `__tapeless__`
table) in the notebook, and the module itself as `model`. Options are `tapeless compile`'s:
`--backend numpy|numba|cupy`, `--no-checks`, `-O 0|1|2`. The cell goes through load()'s cache
(runtime/loader.py): running it again with the same text and options imports the module
compiled the first time, from its real file, so tracebacks show the generated lines.

Errors in the cell are printed as `tapeless compile` prints them (`<tapeless cell>:2:9: error:
...`, the line, carets) on stderr, without a Python traceback, and nothing is bound. The magic
only talks to the shell object IPython hands it, so this module does not import IPython.
"""
from __future__ import annotations

import argparse
import keyword
import shlex
import sys
from pathlib import Path

from .loader import cached_module, import_entry, missing_backend, module_name

CELL = "<tapeless cell>"  # the file name diagnostics and the generated comments show
STEM = "tapeless_cell"  # the cache entries' name: the same text is one entry whatever --name says


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """A bad option line is reported by the magic, not by exiting the kernel."""
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    # the options of `tapeless compile` (compiler/tools/cli.py); backends are checked by the compiler,
    # so a warm cell never imports it
    p = _Parser(prog="%%tapeless", add_help=False,
                description="Compile the cell as a .tl module (cached, as load() does) and bind its "
                            "functions in the notebook.",
                epilog="Errors in the cell are shown as `tapeless compile` shows them; nothing is bound then.")
    p.add_argument("--backend", default="numpy", metavar="numpy|numba|cupy", help="what the module runs on")
    p.add_argument("--no-checks", action="store_true", help="leave argument validation out of the module")
    p.add_argument("-O", dest="opt", type=int, choices=(0, 1, 2), default=1, help="optimisation level")
    p.add_argument("--name", metavar="MODNAME", help="also bind the module itself under this name")
    return p


def tapeless_magic(shell, line: str, cell: str) -> None:
    """Compile `cell` (cached), import it and push its functions into the shell's namespace.
    Errors in the options or the cell are written to stderr and nothing is bound."""
    parser = _parser()
    try:
        args = parser.parse_args(shlex.split(line))
        if args.name is not None and (not args.name.isidentifier() or keyword.iskeyword(args.name)):
            raise _UsageError(f"--name takes a Python identifier, got {args.name!r}")
    except (_UsageError, ValueError) as e:  # (ValueError: shlex's unclosed quote)
        sys.stderr.write(f"{parser.format_usage()}%%tapeless: error: {e}\n")
        return None
    module = _load_cell(cell, args)
    if module is None:
        return None
    names = list(module.__tapeless__)
    bound = {n: getattr(module, n) for n in names}
    if args.name is not None:
        bound[args.name] = module
    shell.push(bound)
    what = ", ".join(names) or "no functions"
    sys.stdout.write(f"tapeless: defined {what}" + (f" and module {args.name}" if args.name else "") + "\n")
    return None


def _load_cell(cell: str, args):
    """The imported module, or None when the cell could not be compiled (reported on stderr)."""
    missing = missing_backend(args.backend)
    if missing is not None:
        sys.stderr.write(f"tapeless: error: {missing}\n")
        return None
    try:
        target, data = cached_module(Path(CELL), args.backend, not args.no_checks, args.opt,
                                     text=cell.encode("utf-8"), stem=STEM)
    except (ValueError, OSError) as e:  # an unknown backend, a cache that cannot be written, a lone surrogate
        sys.stderr.write(f"tapeless: error: {e}\n")
        return None
    except Exception as e:
        # only the compiler raises it, so it is imported by now (a warm cell never imports the compiler)
        from tapeless.compiler.core.diagnostics import CompileError

        if not isinstance(e, CompileError):
            raise  # a bug in tapeless: its traceback is worth seeing
        sys.stderr.write(e.report() + "\n")
        return None
    # (gradcheck's f64 rebuild names the cell in its diagnostics: source=)
    return import_entry(target, data, module_name(Path(CELL), target), source=Path(CELL))


def load_ipython_extension(shell) -> None:
    """`%load_ext tapeless.runtime.ipython`: register the `%%tapeless` cell magic."""
    def tapeless(line, cell):
        return tapeless_magic(shell, line, cell)

    tapeless.__doc__ = _parser().format_help()  # (what `%%tapeless?` shows)
    shell.register_magic_function(tapeless, magic_kind="cell", magic_name="tapeless")


def unload_ipython_extension(shell) -> None:
    shell.magics_manager.magics["cell"].pop("tapeless", None)
