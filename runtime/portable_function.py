"""A generated module's function that another process can unpickle: it travels as its module's text.

`load` imports a module from the tapeless cache under a name like `_tapeless_cache.layer_1f2e...`,
which no other process can import, so pickle (and cloudpickle, which pickles a function of an
importable module by reference) cannot send `m.layer_grad` to a worker. PortableFunction carries
the module's source text instead (generated modules are standalone: NumPy and the standard
library), and a worker process makes the module once, keyed by the text's digest: from the
module's own file when the worker sees the same file (numba's on-disk kernels then apply), else
from the text.
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
import threading
import types
from pathlib import Path
from typing import Callable

_MODULES: dict[str, types.ModuleType] = {}  # text digest -> the module, once per process
_LOCK = threading.Lock()


class PortableFunction:
    """fn of a generated module; calling it calls fn (in another process, fn of the module made
    again from its text)."""

    def __init__(self, fn: Callable):
        self.name = fn.__name__
        module = sys.modules.get(fn.__module__)
        path = getattr(module, "__file__", None)
        self.path = str(path) if path else None
        data = Path(path).read_bytes() if path and Path(path).is_file() else None
        self.text = data.decode("utf-8") if data is not None else None
        self.digest = hashlib.sha256(data).hexdigest() if data is not None else None
        self._fn = fn

    def __call__(self, *args, **kwargs):
        if self._fn is None:
            self._fn = getattr(_module(self.digest, self.text, self.path), self.name)
        return self._fn(*args, **kwargs)

    def __getstate__(self) -> dict:
        if self.text is None:
            raise TypeError(f"{self.name}: its module has no source file, so another process cannot make it "
                            "again; use a module from tapeless.runtime.load (or compiled to a file)")
        return {"name": self.name, "path": self.path, "text": self.text, "digest": self.digest}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._fn = None

    def __dask_tokenize__(self):
        return ("tapeless", self.name, self.digest or id(self._fn))

    def __repr__(self) -> str:
        return f"<PortableFunction {self.name}>"


def _module(digest: str, text: str, path: str | None) -> types.ModuleType:
    with _LOCK:
        module = _MODULES.get(digest)
        if module is None:
            module = _MODULES[digest] = _make(digest, text, path)
        return module


def _make(digest: str, text: str, path: str | None) -> types.ModuleType:
    name = f"_tapeless_portable_{digest[:20]}"
    same_file = False
    if path is not None:
        try:
            same_file = hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest
        except OSError:
            pass
    if same_file:  # the very file: imported from it (tracebacks show it, numba keeps kernels beside it)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    module = types.ModuleType(name)
    module.__file__ = path or f"<{name}>"
    sys.modules[name] = module
    exec(compile(text, module.__file__, "exec"), module.__dict__)  # noqa: S102 - a generated module's own text
    return module
