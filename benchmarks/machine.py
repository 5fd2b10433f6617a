"""What the benchmarks ran on, and the BLAS thread count (read and, on request, set).

Import this only after numpy: the BLAS library is found among the libraries numpy loaded.
Thread control goes through threadpoolctl when it is importable, else through OpenBLAS's own
C entry points via ctypes; both act on this process only.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys

import numpy as np

_GET = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads",
        "scipy_openblas_get_num_threads")
_SET = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads",
        "scipy_openblas_set_num_threads")
_CORE = ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename",
         "scipy_openblas_get_corename")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def core_count() -> tuple[int, int]:
    """(logical CPUs of the machine, CPUs this process may run on)."""
    total = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = total
    return total, usable


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _openblas_lib():
    """The OpenBLAS shared library numpy loaded, as a ctypes CDLL, or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if any(hasattr(lib, name) for name in _GET):
            return lib
    return None


def _symbol(lib, names):
    for name in names:
        if hasattr(lib, name):
            return getattr(lib, name)
    return None


def blas_info() -> dict:
    """name, version/config and thread count of the BLAS numpy uses."""
    info = {"name": "unknown", "config": "", "threads": None, "corename": "", "via": ""}
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["name"] = f"{cfg.get('name', '?')} {cfg.get('version', '')}".strip()
        info["config"] = cfg.get("openblas configuration", "")
    except Exception:  # noqa: BLE001 - older numpy: no dict mode
        pass
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                info["threads"] = pool.get("num_threads")
                info["corename"] = pool.get("architecture", "")
                info["via"] = "threadpoolctl"
                return info
    except ImportError:
        pass
    lib = _openblas_lib()
    if lib is not None:
        get = _symbol(lib, _GET)
        if get is not None:
            get.restype = ctypes.c_int
            info["threads"] = int(get())
        core = _symbol(lib, _CORE)
        if core is not None:
            core.restype = ctypes.c_char_p
            info["corename"] = (core() or b"").decode()
        info["via"] = "OpenBLAS C API"
    return info


def set_blas_threads(n: int) -> bool:
    """Set the BLAS thread count of this process; False when no way to do it was found."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n, user_api="blas")
        return True
    except ImportError:
        pass
    lib = _openblas_lib()
    setter = _symbol(lib, _SET) if lib is not None else None
    if setter is None:
        return False
    setter.argtypes = [ctypes.c_int]
    setter(int(n))
    return True


def describe() -> list[str]:
    total, usable = core_count()
    blas = blas_info()
    lines = [
        f"machine : {cpu_model()}, {total} logical CPUs ({usable} usable by this process), "
        f"{platform.system()} {platform.release()}",
        f"python  : {sys.version.split()[0]} ({sys.executable})",
        f"numpy   : {np.__version__}; BLAS {blas['name']}"
        + (f" [{blas['corename']}]" if blas["corename"] else "")
        + (f", {blas['threads']} threads (read via {blas['via']})" if blas["threads"] else ", threads unknown"),
    ]
    if blas["config"]:
        lines.append(f"          {blas['config']}")
    return lines
