"""The on-disk cache of compiled modules.

A cache entry is a generated `.py` file whose name carries a hash of
everything that determines its text: the `.tl` source, the options (backend,
checks, optimisation level) and the compiler itself (its version and a digest
of its source files, so an edited compiler never serves stale modules).
Computing the key never imports the compiler, so a warm `load` is cheap.

Location: $TAPELESS_CACHE_DIR, else $XDG_CACHE_HOME/tapeless, else ~/.cache/tapeless.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from functools import lru_cache
from pathlib import Path

_STEM = re.compile(r"[^A-Za-z0-9_]")


def cache_dir() -> Path:
    env = os.environ.get("TAPELESS_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tapeless"


@lru_cache(maxsize=1)
def compiler_digest() -> str:
    """A digest of the compiler's and grammar's source files (read, never imported)."""
    h = hashlib.sha256()
    for pkg in ("tapeless.compiler", "tapeless.grammar"):
        spec = importlib.util.find_spec(pkg)
        roots = list(spec.submodule_search_locations or []) if spec else []
        for root in roots:
            for folder, dirs, files in os.walk(root):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")  # (walked in order, bytecode skipped)
                for name in sorted(files):
                    if name.endswith((".py", ".lark")):
                        path = Path(folder, name)
                        h.update(str(path.relative_to(root)).encode())
                        h.update(path.read_bytes())
    return h.hexdigest()


def entry_path(source_text: bytes, stem: str, options: tuple) -> Path:
    h = hashlib.sha256()
    h.update(source_text)
    h.update(repr(options).encode())
    h.update(compiler_digest().encode())
    safe = _STEM.sub("_", stem) or "module"
    return cache_dir() / f"{safe}_{h.hexdigest()[:20]}.py"
