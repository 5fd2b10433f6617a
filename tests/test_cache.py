"""The cache of compiled modules heals itself: verified entries, rebuilt damage, orphans
removed, a size cap with least-recently-used eviction, and `tapeless cache info|clear|prune`."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from tapeless.compiler.tools import cli
from tapeless.runtime import CacheWarning, install_import_hook, load, uninstall_import_hook
from tapeless.runtime.cache_maintenance import GRACE_SECONDS

SRC = "fn double(x: f64[N]) -> f64[N] {\n    return x * 2\n}\n"
TRIPLE = SRC.replace("* 2", "* 3")
ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("cache")  # (conftest.py: a cache directory of each test's own)


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.py"))


def assert_valid(entry: Path) -> None:
    """Checked here from the format's description (docs/language.md), not with the cache's code."""
    key_line, hash_line, body = entry.read_bytes().split(b"\n", 2)
    assert key_line.startswith(b"# tapeless cache key ") and hash_line.startswith(b"# tapeless cache sha256 ")
    assert hashlib.sha256(body).hexdigest() == hash_line.split()[-1].decode()
    assert key_line.split()[-1].decode()[:20] == entry.stem[-20:]


def cache_warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]


def test_load_compiles_once_and_reuses_the_entry_marking_it_used(tmp_path, cache):
    src = tmp_path / "m.tl"
    src.write_text(SRC)
    m = load(src)
    assert m.double(np.arange(3.0)).tolist() == [0.0, 2.0, 4.0]
    [entry] = entries(cache)
    assert m.__file__ == str(entry) and m.__tl_source__ == str(src)
    assert_valid(entry)
    before, text = entry.stat(), entry.read_bytes()
    os.utime(entry, (before.st_atime - 100, before.st_mtime - 100))
    load(src)
    after = entry.stat()
    assert (after.st_ino, entry.read_bytes()) == (before.st_ino, text)  # reused, not rewritten
    assert after.st_mtime > before.st_mtime - 50  # a hit moves the mtime (LRU; atime is unreliable)


def test_a_warm_load_verifies_without_importing_the_compiler(tmp_path, cache):
    src = tmp_path / "m.tl"
    src.write_text(SRC)
    load(src)
    script = ("import sys, warnings\nwarnings.simplefilter('error')\nfrom tapeless.runtime import load\n"
              "m = load(sys.argv[1])\nassert m.double([1.0]).tolist() == [2.0]\n"
              "print(sorted(n for n in sys.modules if n.startswith('tapeless.compiler')))\n")
    run = subprocess.run([sys.executable, "-c", script, str(src)], capture_output=True, text=True)
    assert (run.returncode, run.stdout) == (0, "[]\n"), run.stderr


def test_cache_key_covers_source_and_options(tmp_path, cache):
    src = tmp_path / "m.tl"
    src.write_text(SRC)
    load(src)
    load(src, checks=False)
    src.write_text(TRIPLE)
    m = load(src)
    assert m.double(np.ones(2)).tolist() == [3.0, 3.0]
    assert len(entries(cache)) == 3


def _truncated(data, other):
    return data[: len(data) // 2]


def _nul_filled(data, other):
    return b"\0" * len(data)


def _garbage(data, other):
    return bytes(range(256)) * (len(data) // 256 + 1)


def _empty(data, other):
    return b""


def _header_removed(data, other):
    body = data.split(b"\n", 2)[2]  # valid Python still: importing it would raise
    return b"raise RuntimeError('the damaged entry was imported')\n" + body


def _line_edited(data, other):
    return data.replace(b"\nimport numpy as np\n", b"\nimport numpy as np\nraise RuntimeError('imported')\n", 1)


def _foreign(data, other):
    return other  # a valid entry of another key (a module tripling), copied over


DAMAGE = {
    _truncated: "does not match the SHA-256 in its header",
    _nul_filled: "does not start with a tapeless cache header",
    _garbage: "does not start with a tapeless cache header",
    _empty: "it is empty",
    _header_removed: "does not start with a tapeless cache header",
    _line_edited: "does not match the SHA-256 in its header",
    _foreign: "it belongs to another key",
}


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_or_foreign_entry_is_rebuilt_with_one_warning(tmp_path, cache, damage):
    other = tmp_path / "other.tl"
    other.write_text(TRIPLE)
    load(other)
    [foreign] = entries(cache)
    src = tmp_path / "m.tl"
    src.write_text(SRC)
    load(src)
    [entry] = [e for e in entries(cache) if e != foreign]
    good = entry.read_bytes()
    damaged = damage(good, foreign.read_bytes())
    assert damaged != good
    entry.write_bytes(damaged)

    m, warned = cache_warnings(lambda: load(src))
    assert m.double(np.arange(3.0)).tolist() == [0.0, 2.0, 4.0]
    assert len(warned) == 1, warned
    assert str(entry) in warned[0] and DAMAGE[damage] in warned[0], warned[0]
    assert_valid(entry)
    assert entry.read_bytes() == good
    _, again = cache_warnings(lambda: load(src))
    assert again == []


def test_the_import_hook_heals_a_damaged_entry_too(tmp_path, cache, monkeypatch):
    (tmp_path / "healed_model.tl").write_text(SRC)
    monkeypatch.syspath_prepend(str(tmp_path))
    finder = install_import_hook()
    try:
        import healed_model  # noqa: F401  (compiles into the cache)

        sys.modules.pop("healed_model")
        [entry] = entries(cache)
        entry.write_bytes(entry.read_bytes()[:100])
        module, warned = cache_warnings(lambda: __import__("healed_model"))
        assert module.double(np.ones(1)).tolist() == [2.0]
        assert len(warned) == 1 and str(entry) in warned[0]
        assert_valid(entry)
    finally:
        uninstall_import_hook(finder)
        sys.modules.pop("healed_model", None)


def test_the_same_bytes_at_two_paths_give_modules_naming_their_own_file(tmp_path, cache):
    a, b = tmp_path / "a" / "m.tl", tmp_path / "b" / "m.tl"
    for p in (a, b):
        p.parent.mkdir()
        p.write_text(SRC)
    ma, mb = load(a), load(b)
    assert ma.__file__ != mb.__file__ and len(entries(cache)) == 2
    assert f"from {a}:" in ma.__doc__ and f"from {b}:" in mb.__doc__
    assert f"Source: {a}:1" in Path(ma.__file__).read_text() and str(b) not in Path(ma.__file__).read_text()
    assert (ma.__tl_source__, mb.__tl_source__) == (str(a), str(b))


def test_the_same_file_spelled_relative_from_two_directories_is_two_files(tmp_path, cache, monkeypatch):
    """`m.tl` read from two working directories is two files: the key has the resolved path."""
    for d, src in (("a", SRC), ("b", TRIPLE)):
        (tmp_path / d).mkdir()
        (tmp_path / d / "m.tl").write_text(src)
    monkeypatch.chdir(tmp_path / "a")
    assert load("m.tl").double(np.ones(1)).tolist() == [2.0]
    monkeypatch.chdir(tmp_path / "b")
    assert load("m.tl").double(np.ones(1)).tolist() == [3.0]


def _orphan_by_kill(cache: Path) -> Path:
    """A process killed (SIGKILL) between mkstemp and os.replace, through the cache's own writer."""
    script = ("import os, signal, sys\nfrom pathlib import Path\nfrom tapeless.runtime import cache\n"
              "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
              "cache.write_entry(Path(sys.argv[1]) / ('killed_' + '0' * 20 + '.py'), b'# half a module')\n")
    before = set(cache.iterdir())
    run = subprocess.run([sys.executable, "-c", script, str(cache)], capture_output=True)
    assert run.returncode == -signal.SIGKILL, run.stderr
    [orphan] = set(cache.iterdir()) - before
    assert orphan.name.startswith(".killed_") and orphan.read_bytes() == b"# half a module"
    return orphan


def test_orphaned_temporary_files_are_removed_after_a_grace_period(tmp_path, cache):
    cache.mkdir()
    old = _orphan_by_kill(cache)
    fresh = _orphan_by_kill(cache)
    past = time.time() - GRACE_SECONDS - 60
    os.utime(old, (past, past))
    others = [cache / "notes.txt", cache / ".hidden.tmp", cache / "mine.py"]
    for p in others:
        p.write_text("not the cache's")
    src = tmp_path / "m.tl"
    src.write_text(SRC)
    load(src)  # a write: the loader's upkeep runs
    assert not old.exists()
    assert fresh.exists()  # perhaps a compile in progress in another process
    assert all(p.read_text() == "not the cache's" for p in others)


def _three_entries(tmp_path, cache):
    """Entries of a, b, c last used in that order (explicit times: no sleeping)."""
    paths = []
    for i, name in enumerate("abc"):
        src = tmp_path / f"{name}.tl"
        src.write_text(SRC.replace("double", f"double_{name}"))
        load(src)
        [entry] = [e for e in entries(cache) if e.name.startswith(f"{name}_")]
        t = time.time() - 1000 + 100 * i
        os.utime(entry, (t, t))
        paths.append(entry)
    return paths


def test_least_recently_used_entries_are_evicted_beyond_the_cap(tmp_path, cache, monkeypatch):
    a, _, _ = _three_entries(tmp_path, cache)
    load(tmp_path / "a.tl")  # a hit: a is now the most recently used
    d_src = tmp_path / "d.tl"
    d_src.write_text(SRC.replace("double", "double_d"))
    # room for two entries of this size: writing d must evict b, then c (least recently used first)
    monkeypatch.setenv("TAPELESS_CACHE_MAX_BYTES", str(a.stat().st_size * 2 + 100))
    load(d_src)
    names = [e.name[0] for e in entries(cache)]
    assert names == ["a", "d"], names


def test_the_entry_just_written_stays_even_beyond_the_cap(tmp_path, cache, monkeypatch):
    _three_entries(tmp_path, cache)
    monkeypatch.setenv("TAPELESS_CACHE_MAX_BYTES", "1")
    src = tmp_path / "m.tl"
    src.write_text(SRC)
    assert load(src).double(np.ones(1)).tolist() == [2.0]
    assert [e.name[0] for e in entries(cache)] == ["m"]


@pytest.mark.parametrize("value, ok", [("1K", True), ("256M", True), ("12 MiB", True), ("lots", False), ("-1", False)])
def test_the_cap_variable(tmp_path, monkeypatch, value, ok):
    from tapeless.runtime.cache_maintenance import max_bytes

    monkeypatch.setenv("TAPELESS_CACHE_MAX_BYTES", value)
    if ok:
        assert max_bytes() == {"1K": 1024, "256M": 256 << 20, "12 MiB": 12 << 20}[value]
        return
    src = tmp_path / "m.tl"
    src.write_text(SRC)
    with pytest.raises(ValueError, match=f"TAPELESS_CACHE_MAX_BYTES='{value}': expected a size in bytes"):
        load(src)


def cache_cli(capsys, *args):
    code = cli.main(["cache", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cache_info(tmp_path, cache, capsys):
    code, out, _ = cache_cli(capsys, "info")
    assert code == 0 and f"location:  {cache} (not created yet)" in out and "entries:   0 (0 B, 0 bytes" in out
    a, b, c = _three_entries(tmp_path, cache)
    c.write_bytes(c.read_bytes()[:-10])
    code, out, _ = cache_cli(capsys, "info")
    total = sum(p.stat().st_size for p in (a, b, c))
    assert code == 0
    assert f"location:  {cache}\n" in out
    assert "entries:   3 (" in out and f", {total} bytes, bytecode included)" in out
    assert "cap:       256 MiB (268435456 bytes; default; set TAPELESS_CACHE_MAX_BYTES to change)" in out
    assert f"  {a.name}  (least recently used)" in out.split("oldest:")[1].split("\n")[0]
    assert f"  {c.name}" in out.split("newest:")[1].split("\n")[0]
    assert "damaged:   1 (tapeless cache prune removes them)" in out


def test_cache_clear_removes_only_the_caches_files(tmp_path, cache, capsys, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    _three_entries(tmp_path, cache)
    old, fresh = _orphan_by_kill(cache), _orphan_by_kill(cache)
    past = time.time() - GRACE_SECONDS - 1
    os.utime(old, (past, past))
    others = [cache / "notes.txt", cache / "mine.py", cache / "x_0123.py",
              cache / "__pycache__" / "mine.cpython-311.pyc"]
    for p in others:
        p.write_text("not the cache's")
    assert len(list((cache / "__pycache__").glob("*_*.pyc"))) == 3  # the entries' bytecode
    code, out, _ = cache_cli(capsys, "clear")
    assert code == 0
    assert out.startswith("removed 3 entries (") and out.endswith(
        f"and 1 orphaned temporary file from {cache}; 1 temporary file younger than 10 minutes is a write "
        "in progress, left\n")
    assert sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*")) == \
        sorted(["__pycache__", "__pycache__/mine.cpython-311.pyc", "mine.py", "notes.txt", "x_0123.py", fresh.name])


def test_cache_prune(tmp_path, cache, capsys, monkeypatch):
    a, b, c = _three_entries(tmp_path, cache)
    c.write_bytes(b"\0" * 100)  # damaged
    foreign = cache / "f_0123456789abcdef0123.py"
    foreign.write_bytes(b.read_bytes())  # valid, but under another key's name
    os.utime(foreign, (time.time() + 100, time.time() + 100))  # used last: not evicted for its age
    old, fresh = _orphan_by_kill(cache), cache / ".m_0123456789abcdef0123.py.abcdefgh.tmp"
    fresh.write_text("")
    past = time.time() - GRACE_SECONDS - 1
    os.utime(old, (past, past))
    (cache / "notes.txt").write_text("mine")
    monkeypatch.setenv("TAPELESS_CACHE_MAX_BYTES", str(a.stat().st_size + 10))
    code, out, _ = cache_cli(capsys, "prune")
    assert code == 0, out
    assert out.startswith("removed 2 damaged entries, 1 orphaned temporary file and 1 least recently used entry (")
    assert "; 1 entry (" in out and f") left in {cache}, cap " in out
    assert sorted(p.name for p in cache.iterdir()) == sorted([b.name, fresh.name, "notes.txt"])  # b: used last


def test_cache_command_errors_exit_1(tmp_path, cache, capsys, monkeypatch):
    usage = [((), "the following arguments are required: action"), (("purge",), "invalid choice: 'purge'")]
    for args, message in usage:
        with pytest.raises(SystemExit) as exit:
            cli.main(["cache", *args])
        assert exit.value.code == 1 and message in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("TAPELESS_CACHE_DIR", str(blocker))
    code, out, err = cache_cli(capsys, "clear")
    assert (code, out) == (1, "") and err == f"tapeless: error: {blocker}: the cache location is not a directory " \
                                            "(set TAPELESS_CACHE_DIR)\n"
    monkeypatch.setenv("TAPELESS_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("TAPELESS_CACHE_MAX_BYTES", "big")
    code, _, err = cache_cli(capsys, "info")
    assert code == 1 and "TAPELESS_CACHE_MAX_BYTES='big'" in err and "Traceback" not in err
    monkeypatch.delenv("TAPELESS_CACHE_MAX_BYTES")

    class Unsearchable(type(tmp_path)):  # a location whose parent the user may not search
        def exists(self, **kw):
            raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr("tapeless.runtime.cache_maintenance.cache_dir", lambda: Unsearchable(tmp_path / "c"))
    for action in ("info", "prune", "clear"):
        code, out, err = cache_cli(capsys, action)
        assert (code, out) == (1, "") and err.startswith("tapeless: error: ") and "Permission denied" in err, err


def test_bytecode_is_reused_across_hits_and_damaged_bytecode_is_replaced(tmp_path, cache, monkeypatch):
    """Every hit moves the entry's mtime; Python's bytecode must not be invalidated by that
    (it is validated against the entry's hash), and a damaged .pyc must not break the load."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    src = tmp_path / "m.tl"
    src.write_text(SRC)
    load(src)
    [pyc] = (cache / "__pycache__").glob("*.pyc")
    stamp = pyc.stat().st_mtime_ns, pyc.stat().st_ino
    [entry] = entries(cache)
    os.utime(entry, (1, 1))
    load(src)
    assert (pyc.stat().st_mtime_ns, pyc.stat().st_ino) == stamp  # not rewritten: reused
    pyc.write_bytes(pyc.read_bytes()[:20])  # a valid pyc header, a truncated body
    assert load(src).double(np.ones(1)).tolist() == [2.0]
    assert pyc.stat().st_size > 20  # written again


WORKER = """
import sys, warnings
import numpy as np
warnings.simplefilter("error")  # a CacheWarning would mean a reader saw a partial entry
from tapeless.runtime import load
for i in range(80):
    m = load(sys.argv[1 + (i % 20 == 19)])  # every 20th load another file: its write evicts (cap 1 byte)
    assert m.double(np.arange(3.0)).tolist() == ([0.0, 2.0, 4.0] if i % 20 != 19 else [0.0, 3.0, 6.0])
"""
JANITOR = """
import os, sys, time
from tapeless.runtime.cache_maintenance import cache_command
n = 0
while not os.path.exists(sys.argv[1]) or n < 5:
    cache_command("prune" if n % 2 else "clear")
    n += 1
    time.sleep(0.1)
print(n)
"""


def test_concurrent_loads_race_with_pruning_clearing_and_rebuilding(tmp_path, cache):
    """4 processes x 80 loads of one file, while every write evicts everything else and another
    process prunes and clears the cache in a loop: every load gives a working module."""
    src, other = tmp_path / "m.tl", tmp_path / "o.tl"
    src.write_text(SRC)
    other.write_text(TRIPLE)
    env = dict(os.environ, TAPELESS_CACHE_MAX_BYTES="1", PYTHONDONTWRITEBYTECODE="")
    stop = tmp_path / "stop"
    janitor = subprocess.Popen([sys.executable, "-c", JANITOR, str(stop)], env=env, stdout=subprocess.PIPE, text=True)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(src), str(other)], env=env,
                                stderr=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        errors = [w.communicate(timeout=300)[1] for w in workers]
    finally:
        stop.write_text("")
        rounds = janitor.communicate(timeout=60)[0]
    assert [w.returncode for w in workers] == [0] * 4, "\n".join(errors)
    assert janitor.returncode == 0 and int(rounds) >= 5


def test_numba_machine_code_belongs_to_its_entry(tmp_path, cache, capsys, monkeypatch):
    """numba's cache=True writes each kernel's machine code beside the module (__pycache__/NAME.
    <function>-<line>.py311.nbi and .<k>.nbc): counted in its entry's size, cleared with it."""
    numba = pytest.importorskip("numba", reason="numba is an extra: the numba backend's tests need it")
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")  # (as without NUMBA_CACHE_DIR: beside the module)
    src = tmp_path / "chain.tl"
    src.write_text("fn f(x: f32[N, C]) -> f32 {\n    return sum(tanh(x) * x + 1)\n}\n")
    m = load(src, backend="numba")
    assert m.f(np.ones((300, 100), np.float32)) == pytest.approx(300 * 100 * (np.tanh(1) + 1), rel=1e-5)
    machine = [p for p in (cache / "__pycache__").iterdir() if p.suffix in (".nbi", ".nbc")]
    assert machine, "numba wrote no machine code beside the entry"
    code, out, _ = cache_cli(capsys, "clear")
    assert code == 0 and out.startswith("removed 1 entry")
    assert not [p for p in machine if p.exists()]


def test_a_backend_whose_library_is_missing_is_named_not_a_traceback_from_the_module(tmp_path, cache, monkeypatch):
    """load(backend="numba") without numba: ImportError saying which library and the extra to
    install, before anything is compiled or imported."""
    monkeypatch.setitem(sys.modules, "numba", None)  # (as if not installed: find_spec gives None)
    src = tmp_path / "double.tl"
    src.write_text(SRC)
    with pytest.raises(ImportError, match=r"numba backend.*numba, which is not installed.*tapeless\[numba\]"):
        load(src, backend="numba")
    assert entries(cache) == []
