"""The on-disk cache of compiled modules: where entries live, their key, their format.

An entry is a generated `.py` file named `STEM_KEY20.py` (the `.tl` file's stem and the
first 20 hex digits of its key). The key is a SHA-256 of everything that determines the
text: the `.tl` bytes, the path as the caller spelled it (the generated comments and
diagnostics name the file that way, as `tapeless compile` does) and its absolute form (so
`m.tl` in two working directories is two files), the options (backend, checks, optimisation
level) and the compiler itself (its version and a digest of its source files, so an edited
compiler never serves stale modules). Two files with the same bytes at different paths
therefore get entries of their own, each naming its own file; one file spelled two ways
gets two (identical but for the name). Symbolic links are not resolved: a link's module
names the link, as the user wrote it.

Each entry starts with a two-line header, verified before anything is imported:

    # tapeless cache key <64 hex digits: the key>
    # tapeless cache sha256 <64 hex digits: SHA-256 of every byte after this line>

An entry that is empty, has no header, fails its hash (truncated, NUL-filled, edited) or
names another key (copied over) is not imported: the loader warns once (CacheWarning) and
rebuilds it. Verifying and computing the key never import the compiler, so a warm `load`
stays cheap. Entries are written through a temporary file `.NAME.XXXXXXXX.tmp` in the
cache directory and os.replace, so readers see the old entry or the new one, never a part.

Location: $TAPELESS_CACHE_DIR, else $XDG_CACHE_HOME/tapeless, else ~/.cache/tapeless.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path

FORMAT = "tapeless cache v2"  # part of every key: entries of an older layout are never looked up
_STEM = re.compile(r"[^A-Za-z0-9_]")
# The names the cache writes; maintenance touches nothing else in the directory.
ENTRY_NAME = re.compile(r"(?P<stem>[A-Za-z0-9_]+_(?P<key>[0-9a-f]{20}))\.py")
TEMP_NAME = re.compile(r"\.[A-Za-z0-9_]+_[0-9a-f]{20}\.py\.[a-z0-9_]+\.tmp")
_HEADER = re.compile(rb"# tapeless cache key ([0-9a-f]{64})\n# tapeless cache sha256 ([0-9a-f]{64})\n")


class CacheWarning(UserWarning):
    """A cache entry was damaged or foreign; it was rebuilt, not imported."""


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


def entry_key(source_text: bytes, path: Path, options: tuple) -> str:
    """The full key (64 hex digits) of the module compiled from `source_text` read at `path`."""
    h = hashlib.sha256()
    for part in (FORMAT, os.path.abspath(path), str(path), repr(options), compiler_digest()):
        h.update(part.encode("utf-8", "surrogateescape") + b"\0")  # separated: parts never run together
    h.update(source_text)
    return h.hexdigest()


def entry_path(key: str, stem: str) -> Path:
    safe = _STEM.sub("_", stem) or "module"
    return cache_dir() / f"{safe}_{key[:20]}.py"


def with_header(key: str, text: str) -> bytes:
    body = text.encode("utf-8")
    digest = hashlib.sha256(body).hexdigest()
    return f"# tapeless cache key {key}\n# tapeless cache sha256 {digest}\n".encode() + body


def problem(data: bytes, key: str | None = None, name_key: str | None = None) -> str | None:
    """What is wrong with an entry's bytes (None: nothing). `key` is the full key it must carry;
    without one (prune, which knows only file names), `name_key` is the prefix of it the name carries."""
    if not data:
        return "it is empty"
    m = _HEADER.match(data)
    if m is None:
        return "it does not start with a tapeless cache header (damaged, or not written by tapeless)"
    found = m.group(1).decode()
    if hashlib.sha256(data[m.end():]).hexdigest() != m.group(2).decode():
        return "its text does not match the SHA-256 in its header (truncated, overwritten or edited)"
    if (key is not None and found != key) or (name_key is not None and not found.startswith(name_key)):
        expected = key or name_key
        return f"it belongs to another key ({found[:20]}..., expected {expected[:20]}...): copied over"
    return None


def stamp(data: bytes) -> int:
    """32 bits of a valid entry's hash: what its bytecode is validated against (loader.EntryLoader)."""
    return int(_HEADER.match(data).group(2)[:8], 16)


def read_entry(target: Path, key: str) -> tuple[bytes | None, str | None]:
    """(the entry's bytes, None) when it is there and valid; (None, None) when there is no entry;
    (None, what is wrong) when it must be rebuilt."""
    try:
        data = target.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None, None  # (or removed by a concurrent prune; a location that is a file is reported on writing)
    except OSError as e:
        return None, f"it cannot be read ({e.strerror})"
    wrong = problem(data, key)
    return (None, wrong) if wrong else (data, None)


def touch(target: Path) -> None:
    """Mark an entry used, for least-recently-used eviction: its mtime, as atime is unreliable
    (noatime mounts). A read-only cache, or an entry a concurrent prune removed, is fine."""
    try:
        os.utime(target)
    except OSError:
        pass


def write_entry(target: Path, data: bytes) -> None:
    """Write an entry atomically: a temporary file named after it (TEMP_NAME, so an orphan left by
    a kill between mkstemp and os.replace is recognised and removed later), then os.replace."""
    for attempt in range(3):  # the directory may vanish meanwhile (the cache removed by hand): make it again
        tmp = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # as an ordinary new file (mkstemp makes it private)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
            return
        except BaseException as e:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            if not isinstance(e, FileNotFoundError) or attempt == 2:
                raise


def _umask() -> int:
    mask = os.umask(0)  # (only readable by setting it: done once, at import)
    os.umask(mask)
    return mask


_UMASK = _umask()
