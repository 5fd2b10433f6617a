"""Accuracy (in ulps) and speed of the numba kernel math forms (codegen/kernels/numba_math.py).

    python -m tapeless.compiler.tools.ulp_report [--stride 97] [--f64-samples 4000000] [--no-speed]

Accuracy: each form over a strided sweep of all float32 bit patterns (every `stride`-th, plus the
extremes) against float64 NumPy, and over evenly strided float64 bit patterns plus dense uniform
ranges against np.longdouble (x87 80-bit: 11 bits more than float64). Error = |y - ref| in units
of the spacing of the result's dtype at ref (np.spacing, which goes down into the subnormals); a
non-finite result counts 0 when it is the rounded reference and inf otherwise.

Speed (a measurement, not a test): ms for 2M float32 / 1M float64 per form in a loop, the same
loop calling numba's libm (np.<fname>), and the NumPy ufunc on the whole array; interleaved
rounds, the best. By default the loops are plain `range` loops on one thread, as NumPy
is: the cost per element. `--parallel` times `prange` loops instead (on a loaded 2-core machine
an OpenMP prange of a trivial 2M copy took 7-16 ms against 0.55 ms serial: the thread pool's
wait, not the math).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from ..codegen.kernels import numba_math as M

# ---- references: fname -> f(x) over float64 or longdouble -----------------------------------


def _ref_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _ref_softplus(x):
    return np.logaddexp(x, np.zeros((), x.dtype))


def reference(fname: str):
    return globals().get(f"_ref_{fname}") or getattr(np, fname)


# The kernel body for numba's libm and for the NumPy ufunc(s), where fname is not a NumPy ufunc
# itself; written as the NumPy backend writes it (sigmoid: one ufunc chain; softplus: logaddexp).
# (Looked up by name: a string spelling an op name would break the one-table rule's check.)
_libm_body_sigmoid = "1 / (1 + np.exp(-v))"
_libm_body_softplus = "(v if v > 0 else v * 0) + np.log1p(np.exp(-abs(v)))"


def _numpy_sigmoid(x, out):
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1
    np.reciprocal(out, out=out)


def _numpy_softplus(x, out):
    np.logaddexp(x, np.zeros((), x.dtype), out=out)


def numpy_call(fname: str):
    own = globals().get(f"_numpy_{fname}")
    if own is not None:
        return own
    uf = getattr(np, fname)
    return lambda x, out: uf(x, out=out)


# ---- compiling the forms and kernels over them ----------------------------------------------
_HEADER = "import numpy as np\nimport numba\nimport numba.extending\n\n"


def compile_forms(keys=None, parallel: bool = True) -> dict[tuple[str, str], object]:
    """(fname, dtype) -> a numba kernel k(x, out) writing the form over x (a prange loop when
    parallel, else a plain range loop)."""
    keys = list(M.FORMS) if keys is None else list(keys)
    lines = [_HEADER, M.source([M.FORMS[k].name for k in keys]), ""]
    for fname, dtype in keys:
        lines.append(_kernel_source(f"_k_{fname}_{dtype}", M.FORMS[(fname, dtype)].name + "(x[i])", parallel))
    ns: dict = {}
    exec(compile("\n".join(lines), "<numba_math forms>", "exec"), ns)
    return {(f, d): ns[f"_k_{f}_{d}"] for f, d in keys}


def _kernel_source(name: str, expr: str, parallel: bool = True) -> str:
    return f"""
@numba.njit(parallel={parallel}, {M.KERNEL_FLAGS})
def {name}(x, out):
    for i in {"numba.prange" if parallel else "range"}(x.shape[0]):
        out[i] = {expr}
"""


def compile_libm(keys, parallel: bool = True) -> dict[tuple[str, str], object]:
    ns: dict = {}
    src = [_HEADER]
    for fname, dtype in keys:
        body = globals().get(f"_libm_body_{fname}", f"np.{fname}(v)")
        src.append(f"""
@numba.njit(parallel={parallel}, {M.KERNEL_FLAGS})
def _l_{fname}_{dtype}(x, out):
    for i in {"numba.prange" if parallel else "range"}(x.shape[0]):
        v = x[i]
        out[i] = {body}
""")
    exec(compile("\n".join(src), "<libm kernels>", "exec"), ns)
    return {(f, d): ns[f"_l_{f}_{d}"] for f, d in keys}


# ---- samples and errors ------------------------------------------------------------------------
_EXTREMES = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0]


def f32_sample(stride: int = 97) -> np.ndarray:
    """Every stride-th float32 bit pattern (all signs, exponents, nan and inf patterns), the
    extremes, and the edges of each dtype's range."""
    bits = np.arange(0, 2 ** 32, stride, dtype=np.uint64).astype(np.uint32)
    fi = np.finfo(np.float32)
    extra = np.array(_EXTREMES + [fi.max, -fi.max, fi.tiny, -fi.tiny, fi.smallest_subnormal,
                                  -fi.smallest_subnormal], np.float32)
    return np.concatenate([bits.view(np.float32), extra, _dense(np.float32)])


def f64_sample(n: int = 4_000_000) -> np.ndarray:
    """n float64 bit patterns evenly strided over all 2**64 (an odd step, so every mantissa bit
    varies), the extremes, and dense uniform values where the functions bend."""
    step = np.uint64((2 ** 64 // n) | 1)
    bits = np.arange(n, dtype=np.uint64) * step
    fi = np.finfo(np.float64)
    extra = np.array(_EXTREMES + [fi.max, -fi.max, fi.tiny, -fi.tiny, fi.smallest_subnormal,
                                  -fi.smallest_subnormal], np.float64)
    return np.concatenate([bits.view(np.float64), extra, _dense(np.float64)])


def _dense(dtype) -> np.ndarray:
    rng = np.random.default_rng(18)
    parts = [rng.uniform(-1, 1, 200_000), rng.uniform(-30, 30, 200_000), rng.uniform(-800, 800, 100_000),
             np.exp(rng.uniform(-20, 5, 100_000)) - 1]  # log1p near -1 and 0
    return np.concatenate(parts).astype(dtype)


def ulp_errors(fname: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|y - ref| in ulps of x's dtype at ref, for every element (nan-safe; see the module doc)."""
    wide = np.float64 if x.dtype == np.float32 else np.longdouble
    with np.errstate(all="ignore"):
        ref = reference(fname)(x.astype(wide))
        rounded = ref.astype(x.dtype)
        ulp = np.spacing(np.abs(rounded)).astype(wide)
        err = np.abs(y.astype(wide) - ref) / ulp
    finite = np.isfinite(rounded) & np.isfinite(y)
    same = (y == rounded) | (np.isnan(y) & np.isnan(rounded))
    return np.where(finite, err, np.where(same, 0.0, np.inf)).astype(np.float64)


def measure(kernels, keys, stride: int = 97, f64_n: int = 4_000_000, chunk: int = 4_000_000):
    """(fname, dtype) -> (max ulp, mean ulp, the x of the max)."""
    samples = {"float32": f32_sample(stride), "float64": f64_sample(f64_n)}
    out = {}
    for key in keys:
        fname, dtype = key
        x_all = samples[dtype]
        worst, total, arg = 0.0, 0.0, None
        for s in range(0, x_all.size, chunk):
            x = x_all[s:s + chunk]
            y = np.empty_like(x)
            kernels[key](x, y)
            e = ulp_errors(fname, x, y)
            k = int(np.argmax(e))
            if e[k] > worst or arg is None:
                worst, arg = float(e[k]), x[k]
            total += float(e[np.isfinite(e)].sum())
        out[key] = (worst, total / x_all.size, arg)
    return out


# ---- speed -------------------------------------------------------------------------------------
def speed(forms, libm, keys, rounds: int = 15):
    """(fname, dtype) -> (form ms, libm ms, ufunc ms): the best of interleaved rounds."""
    rng = np.random.default_rng(0)
    out = {}
    for key in keys:
        fname, dtype = key
        n = 2_000_000 if dtype == "float32" else 1_000_000
        x = rng.uniform(-5, 5, n).astype(dtype)
        with np.errstate(all="ignore"):
            if np.isnan(reference(fname)(x)).any():  # log, log1p: their domain
                x = np.abs(x)
        o = np.empty_like(x)
        fns = [lambda: forms[key](x, o), lambda: libm[key](x, o), lambda: numpy_call(fname)(x, o)]
        for f in fns:
            f()  # compile / warm
        times = [[], [], []]
        for _ in range(rounds):
            for j, f in enumerate(fns):
                t = time.perf_counter()
                f()
                times[j].append(time.perf_counter() - t)
        out[key] = tuple(1e3 * float(np.min(t)) for t in times)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stride", type=int, default=97)
    ap.add_argument("--f64-samples", type=int, default=4_000_000)
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--parallel", action="store_true", help="time prange loops (default: one thread)")
    ap.add_argument("--only", default="", help="comma-separated function names")
    args = ap.parse_args(argv)
    keys = [k for k in M.FORMS if not args.only or k[0] in args.only.split(",")]
    t = time.perf_counter()
    forms = compile_forms(keys)
    acc = measure(forms, keys, args.stride, args.f64_samples)
    print(f"# accuracy (stride {args.stride} over float32 patterns, {args.f64_samples} float64 "
          f"patterns, + dense ranges), compile + sweep {time.perf_counter() - t:.1f} s")
    if not args.no_speed:
        print(f"# speed: best of 15 interleaved, ms, {'prange' if args.parallel else 'one-thread'} loops")
    sp = {} if args.no_speed else speed(compile_forms(keys, args.parallel), compile_libm(keys, args.parallel), keys)
    print(f"{'fname':9} {'dtype':8} {'use':5} {'max_ulp':>8} {'mean_ulp':>9} {'worst_x':>14}"
          + ("" if not sp else f" {'form_ms':>8} {'libm_ms':>8} {'ufunc_ms':>8} {'form/uf':>8} {'libm/uf':>8}"))
    for key in keys:
        worst, mean, arg = acc[key]
        line = f"{key[0]:9} {key[1]:8} {M.USE.get(key, '-'):5} {worst:8.2f} {mean:9.4f} {float(arg):14.7g}"
        if sp:
            f, lm, uf = sp[key]
            line += f" {f:8.3f} {lm:8.3f} {uf:8.3f} {f / uf:8.2f} {lm / uf:8.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
