"""Keeping the cache bounded and clean: the size cap, orphaned temporary files, and
`tapeless cache info | clear | prune`.

After every write the loader removes orphaned temporary files and evicts the least recently
used entries (by mtime, which every cache hit sets) until the cache fits its cap: 256 MiB,
or $TAPELESS_CACHE_MAX_BYTES (bytes, or with a K, M or G suffix: powers of 1024). The entry
just written is never evicted. A temporary file is an orphan (a process killed between
mkstemp and os.replace) once it is older than GRACE_SECONDS; a younger one may belong to a
compile in progress in another process, which replaces it within moments.

Only names the cache writes are touched (cache.ENTRY_NAME, cache.TEMP_NAME, and the bytecode
Python and the machine code numba write for entries in __pycache__); anything else in the
directory is left alone.
"""
from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cache import ENTRY_NAME, TEMP_NAME, cache_dir, problem

DEFAULT_MAX_BYTES = 256 << 20
MAX_BYTES_VARIABLE = "TAPELESS_CACHE_MAX_BYTES"
GRACE_SECONDS = 600
# Python's bytecode of an entry (NAME.cpython-311.pyc, .opt-1.pyc) and importlib's temporary (NAME...pyc.12345)
_BYTECODE_NAME = re.compile(r"(?P<stem>[A-Za-z0-9_]+_[0-9a-f]{20})\.[A-Za-z0-9_-]+(?:\.opt-\d)?\.pyc(?P<tmp>\.\d+)?")
# numba's machine code for an entry's kernels (cache=True, the numba backend): its index
# NAME.<function>-<line>.py311.nbi and data NAME.<function>-<line>.py311.<k>.nbc
_NUMBA_NAME = re.compile(r"(?P<stem>[A-Za-z0-9_]+_[0-9a-f]{20})\.[A-Za-z0-9_]+-\d+\.py\d+(?:\.\d+\.nbc|\.nbi)")
_SIZE = re.compile(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", re.IGNORECASE)


def max_bytes() -> int:
    """The cap from $TAPELESS_CACHE_MAX_BYTES, or the default; ValueError naming the variable."""
    raw = os.environ.get(MAX_BYTES_VARIABLE)
    if raw is None or raw.strip() == "":
        return DEFAULT_MAX_BYTES
    m = _SIZE.fullmatch(raw)
    if m is None:
        raise ValueError(f"{MAX_BYTES_VARIABLE}={raw!r}: expected a size in bytes, optionally with a "
                         "K, M or G suffix (powers of 1024), such as 268435456 or 256M")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]


@dataclass
class Entry:
    path: Path
    mtime: float  # last use
    size: int  # with its bytecode
    bytecode: list[Path] = field(default_factory=list)


@dataclass
class Listing:
    directory: Path
    entries: dict[str, Entry]  # by stem
    temps: list[tuple[Path, float]]  # (path, mtime): ours and importlib's bytecode temporaries
    stray_bytecode: list[Path]  # bytecode of an entry no longer there

    @property
    def total(self) -> int:
        return sum(e.size for e in self.entries.values())


def scan(directory: Path) -> Listing:
    """What the cache holds; files that vanish meanwhile (a concurrent prune) are skipped."""
    entries: dict[str, Entry] = {}
    temps: list[tuple[Path, float]] = []
    for name in _names(directory):
        m = ENTRY_NAME.fullmatch(name)
        if m or TEMP_NAME.fullmatch(name):
            st = _stat(directory / name)
            if st is None:
                continue
            if m:
                entries[m.group("stem")] = Entry(directory / name, st.st_mtime, st.st_size)
            else:
                temps.append((directory / name, st.st_mtime))
    stray = []
    for name in _names(directory / "__pycache__"):
        m = _BYTECODE_NAME.fullmatch(name) or _NUMBA_NAME.fullmatch(name)
        st = _stat(directory / "__pycache__" / name) if m else None
        if st is None:
            continue
        path = directory / "__pycache__" / name
        if m.groupdict().get("tmp"):
            temps.append((path, st.st_mtime))
        elif m.group("stem") in entries:
            entries[m.group("stem")].size += st.st_size
            entries[m.group("stem")].bytecode.append(path)
        else:
            stray.append(path)
    return Listing(directory, entries, temps, stray)


def _names(directory: Path) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _stat(path: Path):
    """A regular file's stat, else None (gone meanwhile, or a link or directory: never the cache's)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _remove(path: Path) -> bool:
    """Remove a file; False when it was already gone (removed concurrently)."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _remove_entry(entry: Entry) -> bool:
    for b in entry.bytecode:
        _remove(b)
    return _remove(entry.path)


@dataclass
class Removed:
    damaged: list[Path] = field(default_factory=list)
    temps: list[Path] = field(default_factory=list)
    evicted: list[Path] = field(default_factory=list)
    bytes: int = 0


def remove_orphans(listing: Listing, removed: Removed, grace: float = GRACE_SECONDS) -> None:
    """Temporary files older than `grace` seconds, and bytecode whose entry is gone."""
    now = time.time()
    for path, mtime in listing.temps:
        if now - mtime > grace and _remove(path):
            removed.temps.append(path)
    for path in listing.stray_bytecode:
        _remove(path)


def evict(listing: Listing, cap: int, removed: Removed, keep: Path | None = None) -> None:
    """Remove the least recently used entries until the cache fits `cap` (never `keep`)."""
    total = listing.total
    for stem, entry in sorted(listing.entries.items(), key=lambda kv: (kv[1].mtime, kv[0])):
        if total <= cap:
            break
        if entry.path == keep:
            continue
        if _remove_entry(entry):
            removed.evicted.append(entry.path)
            removed.bytes += entry.size
        total -= entry.size
        del listing.entries[stem]


def after_write(target: Path, cap: int) -> None:
    """The loader's upkeep after writing `target`: orphans out, then the cap. Best effort: a cache
    shared with other users or on a read-only mount must not make `load` fail."""
    try:
        listing = scan(target.parent)
        removed = Removed()
        remove_orphans(listing, removed)
        evict(listing, cap, removed, keep=target)
    except OSError:
        pass


# ---------------------------------------------------------------- tapeless cache info | clear | prune

def prune(directory: Path, cap: int) -> Removed:
    """Damaged entries, orphans, then least recently used entries beyond the cap."""
    listing = scan(directory)
    removed = Removed()
    for stem, entry in list(listing.entries.items()):
        try:
            data = entry.path.read_bytes()
        except FileNotFoundError:
            del listing.entries[stem]
            continue
        if problem(data, name_key=ENTRY_NAME.fullmatch(entry.path.name).group("key")):
            if _remove_entry(entry):
                removed.damaged.append(entry.path)
                removed.bytes += entry.size
            del listing.entries[stem]
    remove_orphans(listing, removed)
    evict(listing, cap, removed)
    return removed


def clear(directory: Path) -> Removed:
    """Every entry with its bytecode, and the orphaned temporary files; nothing else. A temporary
    file younger than GRACE_SECONDS stays: it is a write in progress, which must not fail."""
    listing = scan(directory)
    removed = Removed()
    for entry in listing.entries.values():
        if _remove_entry(entry):
            removed.evicted.append(entry.path)
            removed.bytes += entry.size
    remove_orphans(listing, removed)
    try:
        os.rmdir(directory / "__pycache__")  # only when empty: it may hold others' files
    except OSError:
        pass
    return removed


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} B"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def info(directory: Path, cap: int) -> str:
    listing = scan(directory)
    damaged = 0
    for e in listing.entries.values():
        try:
            data = e.path.read_bytes()
        except OSError:
            continue
        damaged += problem(data, name_key=ENTRY_NAME.fullmatch(e.path.name).group("key")) is not None
    chosen = os.environ.get(MAX_BYTES_VARIABLE, "").strip()
    source = MAX_BYTES_VARIABLE if chosen else f"default; set {MAX_BYTES_VARIABLE} to change"
    lines = [f"location:  {directory}{'' if directory.is_dir() else ' (not created yet)'}",
             f"entries:   {len(listing.entries)} ({_size(listing.total)}, {listing.total} bytes, bytecode included)",
             f"cap:       {_size(cap)} ({cap} bytes; {source})"]
    if listing.entries:
        by_use = sorted(listing.entries.values(), key=lambda e: e.mtime)
        lines.append(f"oldest:    {_when(by_use[0].mtime)}  {by_use[0].path.name}  (least recently used)")
        lines.append(f"newest:    {_when(by_use[-1].mtime)}  {by_use[-1].path.name}")
    lines.append(f"damaged:   {damaged}{' (tapeless cache prune removes them)' if damaged else ''}")
    lines.append(f"temporary: {_count(len(listing.temps), 'file', 'files')}"
                 f" (removed when older than {GRACE_SECONDS // 60} minutes)")
    return "\n".join(lines) + "\n"


def cache_command(action: str) -> str:
    """The text `tapeless cache ACTION` prints; ValueError (the message for the user) when the
    cap variable is malformed, the location is not a directory or a file cannot be removed."""
    directory = cache_dir()
    try:
        # (inside: exists() itself raises PermissionError where the parent cannot be searched)
        if directory.exists() and not directory.is_dir():
            raise ValueError(f"{directory}: the cache location is not a directory (set TAPELESS_CACHE_DIR)")
        if action == "info":
            return info(directory, max_bytes())
        if action == "clear":
            r = clear(directory)
            young = len(scan(directory).temps)
            return (f"removed {_count(len(r.evicted), 'entry', 'entries')} ({_size(r.bytes)}) and "
                    f"{_count(len(r.temps), 'orphaned temporary file', 'orphaned temporary files')} from {directory}"
                    + (f"; {_count(young, 'temporary file', 'temporary files')} younger than {GRACE_SECONDS // 60} "
                       f"minutes {'is a write' if young == 1 else 'are writes'} in progress, left" if young else "")
                    + "\n")
        if action == "prune":
            cap = max_bytes()
            r = prune(directory, cap)
            left = scan(directory)
            return (f"removed {_count(len(r.damaged), 'damaged entry', 'damaged entries')}, "
                    f"{_count(len(r.temps), 'orphaned temporary file', 'orphaned temporary files')} and "
                    f"{_count(len(r.evicted), 'least recently used entry', 'least recently used entries')} "
                    f"({_size(r.bytes)}); {_count(len(left.entries), 'entry', 'entries')} ({_size(left.total)}) "
                    f"left in {directory}, cap {_size(cap)}\n")
    except OSError as e:
        raise ValueError(f"{e.filename or directory}: {e.strerror}") from None
    raise ValueError(f"unknown cache action {action!r}")
