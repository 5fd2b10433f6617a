"""dask_grad at scale: the logistic-regression gradient over 2.5e7 x 64 float32 rows made chunk by
chunk on a LocalCluster of worker processes (6.4 GB of x, never in memory at once), against the
single-process in-memory gradient on a tenth of the rows.

    python benchmarks/dask_logreg.py                     # 2.5e7 rows, 2 workers (a minute or two)
    python benchmarks/dask_logreg.py --rows 2000000      # a quick run

What it prints: the machine; the in-memory f_grad on rows/10 rows (made in memory, the median
of --repeats calls after a warm-up) in rows/s; dask_grad over all the rows (x and the labels
generated inside the graph, chunk by chunk, from a fixed seed; labels from a fixed w) in rows/s,
and the time a pass that only generates the data takes, and dask_grad on the tenth of the rows kept in
the workers' memory (generated once, persisted; median of --repeats); each worker's peak RSS (VmHWM) and
the client's; and a check that dask_grad equals the in-memory gradient on the first chunks.
Like run.py, it unsets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE in its own environment before
NumPy is imported (the workers inherit that), and says so. A measurement, not a test.
"""
from __future__ import annotations

import argparse
import os
import sys

OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
ENV_NOTES = []
for _name in OPENBLAS_OVERRIDES:
    if _name in os.environ:
        ENV_NOTES.append(f"{_name} unset before importing numpy (was {os.environ.pop(_name)!r})")

import datetime  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import blas_info, core_count, cpu_model, load_average  # noqa: E402

SOURCE = HERE / "workloads" / "dask_logreg.tl"


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=25_000_000, help="rows of x over the cluster (default 2.5e7)")
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--chunk-rows", type=int, default=250_000, help="rows per chunk (default 250,000: 64 MB of x)")
    p.add_argument("--workers", type=int, default=2, help="worker processes, one thread each")
    p.add_argument("--repeats", type=int, default=5, help="timed in-memory calls (the median is shown)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    return p.parse_args(argv)


def max_rss_mb() -> float:
    """This process's peak RSS: VmHWM, the high-water mark of its own memory map. (Not getrusage's
    ru_maxrss: Linux carries that across fork and exec, so a worker would report the peak of the
    client it was started from.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # (KiB on Linux)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _f64_logreg(x, y, w, lam):
    """value, d_w, d_lam of the workload in float64, written out with NumPy."""
    x, y, w = (np.asarray(a, np.float64) for a in (x, y, w))
    z = x @ w
    value = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))) + lam * (w @ w)
    d_z = (1 / (1 + np.exp(-z)) - y) / len(y)
    return value, x.T @ d_z + 2 * float(lam) * w, w @ w


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def main(argv=None) -> int:
    args = _args(argv)
    cache = tempfile.mkdtemp(prefix="tapeless-dask-bench-")  # (a private tapeless cache, removed at the end)
    os.environ["TAPELESS_CACHE_DIR"] = cache
    try:
        return run(args)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def run(args) -> int:
    import dask
    import dask.array as da
    import distributed

    from tapeless.runtime import dask_grad, load

    m = load(SOURCE)
    d, lam = args.features, np.float32(1e-3)
    w_true = np.random.default_rng(args.seed + 1).standard_normal(d).astype(np.float32)
    w0 = (0.1 * np.random.default_rng(args.seed + 2).standard_normal(d)).astype(np.float32)  # (where it is evaluated)
    total, usable = core_count()
    blas = blas_info()
    figures = {"date": datetime.date.today().isoformat(), "cpu": cpu_model(), "cpus": total, "usable": usable,
               "blas": blas["name"], "numpy": np.__version__, "dask": dask.__version__,
               "distributed": distributed.__version__, "rows": args.rows, "features": d,
               "chunk_rows": args.chunk_rows, "workers": args.workers, "env": ENV_NOTES}
    print(f"dask_logreg  {figures['date']}  {figures['cpu']}  {total} CPUs ({usable} usable), load {load_average()}")
    print(f"  numpy {np.__version__} ({blas['name']}, {blas['threads']} BLAS threads), dask {dask.__version__}, "
          f"distributed {distributed.__version__}")
    for note in ENV_NOTES or ["OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE not set"]:
        print(f"  {note}")

    # ---- in memory, one process, a tenth of the rows -----------------------------------------------------
    n = args.rows // 10
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = (x @ w_true + rng.standard_normal(n, dtype=np.float32) > 0).astype(np.float32)
    m.logreg_grad(x, y, w0, lam)  # (warm-up)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        m.logreg_grad(x, y, w0, lam)
        times.append(time.perf_counter() - t0)
    t_mem = statistics.median(times)
    figures.update(memory_rows=n, memory_s=t_mem, memory_rows_per_s=n / t_mem, client_rss_after_memory_mb=max_rss_mb())
    print(f"\nin memory, 1 process: {n:,} x {d} rows ({x.nbytes / 1e9:.2f} GB), f_grad median {t_mem * 1e3:.0f} ms "
          f"(min {min(times) * 1e3:.0f}, max {max(times) * 1e3:.0f}) = {n / t_mem / 1e6:.1f} M rows/s")
    del x, y

    # ---- the cluster: all the rows, made chunk by chunk inside the graph -----------------------------------
    def data(rows):
        g = da.random.default_rng(args.seed)
        xs = g.standard_normal((rows, d), dtype=np.float32, chunks=(args.chunk_rows, d))
        noise = g.standard_normal(rows, dtype=np.float32, chunks=args.chunk_rows)
        return xs, (xs @ w_true + noise > 0).astype(np.float32)

    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40,
                                  env={"TAPELESS_THREADS": "1"}) as cluster, distributed.Client(cluster) as client:
        start_rss = client.run(rss_mb)
        # (a warm-up over two chunks: the function reaches the workers, their imports happen; it is
        # also the check: dask_grad and the in-memory f_grad of the same rows against float64)
        xs, ys = data(2 * args.chunk_rows)
        got = dask_grad(m.logreg_grad, xs, ys, w0, lam)
        xv, yv = dask.compute(xs, ys)
        ref = m.logreg_grad(xv, yv, w0, lam)
        exact = _f64_logreg(xv, yv, w0, lam)
        err = {k: max(_rel(a, b) for a, b in zip(r, exact)) for k, r in (("dask_grad", got), ("in_memory", ref))}
        del xv, yv
        xs, ys = data(args.rows)
        t0 = time.perf_counter()
        value, d_w, _ = dask_grad(m.logreg_grad, xs, ys, w0, lam)
        t_dask = time.perf_counter() - t0
        peaks = client.run(max_rss_mb)
        t0 = time.perf_counter()
        dask.compute(xs.sum(), ys.sum())  # the data alone: generating it and reading it once
        t_gen = time.perf_counter() - t0
        # the tenth again, generated once and kept in the workers' memory (persist): dask_grad's
        # own throughput, like for like with the in-memory call (after the peaks were read)
        xs, ys = data(n)
        xs, ys = client.persist([xs, ys])
        distributed.wait([xs, ys])
        dask_grad(m.logreg_grad, xs, ys, w0, lam)  # (warm-up)
        resident = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            dask_grad(m.logreg_grad, xs, ys, w0, lam)
            resident.append(time.perf_counter() - t0)
        t_res = statistics.median(resident)
    figures.update(dask_s=t_dask, dask_rows_per_s=args.rows / t_dask, generate_only_s=t_gen,
                   resident_s=t_res, resident_rows_per_s=n / t_res,
                   worker_start_rss_mb=sorted(start_rss.values()), worker_peak_rss_mb=sorted(peaks.values()),
                   client_peak_rss_mb=max_rss_mb(), check_rel_error=err, value=float(value),
                   speedup=(args.rows / t_dask) / (n / t_mem))
    gb = args.rows * d * 4 / 1e9
    print(f"\ndask_grad, {args.workers} worker processes x 1 thread: {args.rows:,} x {d} rows ({gb:.1f} GB of x, "
          f"{-(-args.rows // args.chunk_rows)} chunks of {args.chunk_rows:,}), never materialised")
    print(f"  {t_dask:.1f} s = {args.rows / t_dask / 1e6:.2f} M rows/s "
          f"({figures['speedup']:.2f}x the in-memory rows/s); generating the data alone: {t_gen:.1f} s")
    if t_dask > t_gen:  # (one thread a worker: generating and the gradients take turns)
        print(f"  less the generation: {t_dask - t_gen:.1f} s = {args.rows / (t_dask - t_gen) / 1e6:.2f} M rows/s "
              f"(an estimate)")
    print(f"  on the tenth kept in the workers' memory ({n:,} rows, {-(-n // args.chunk_rows)} chunks): median "
          f"{t_res * 1e3:.0f} ms (min {min(resident) * 1e3:.0f}, max {max(resident) * 1e3:.0f}) = "
          f"{n / t_res / 1e6:.1f} M rows/s ({t_mem / t_res:.2f}x the in-memory rows/s)")
    print(f"  peak RSS per worker: {', '.join(f'{v:.0f} MB' for v in figures['worker_peak_rss_mb'])} "
          f"(at start {', '.join(f'{v:.0f}' for v in figures['worker_start_rss_mb'])} MB); "
          f"client {figures['client_peak_rss_mb']:.0f} MB (its peak includes the in-memory slice)")
    print(f"  value {float(value):.6f}, |d_w| {np.linalg.norm(d_w):.6f}; on the first two chunks, relative to "
          f"float64: dask_grad {err['dask_grad']:.1e}, in-memory f_grad {err['in_memory']:.1e}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
