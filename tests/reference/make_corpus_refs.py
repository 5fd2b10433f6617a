"""Record PyTorch reference values for every derivative the corpus asks for.

Run by hand (never by CI; torch is not a dependency of tapeless or of its tests):

    cd /work/main && /tmp/torchenv/bin/python tests/reference/make_corpus_refs.py

with a Python that has torch (2.13.0 CPU was used), numpy and tapeless itself
(`pip install --no-deps -e /work/main` and `pip install lark`; sympy comes with torch):
the inputs are drawn from the compiled tapeless modules exactly as the tests draw them.
It (re)writes tests/reference/corpus_refs.json next to this script, which
tests/test_corpus_pytorch.py reads. See tests/reference/README.md.

What is recorded
----------------
For every corpus program (tests/corpus.py: tests/cases/*.tl and examples/*.tl except
examples/broken*.tl), compiled as the tests compile it (`path=` the file name):

* ``code_sha256``: SHA-256 of the program with comments and blank lines removed and each
  line stripped (so the test notices when the code changed since recording);
* ``functions``: one entry per function a ``grad``, ``vjp``, ``jvp`` or ``hvp`` directive
  generates (the ``__tapeless__`` entries of those kinds), with the directive's metadata
  (``kind``, ``of``, ``wrt``, ``params``, the number of outputs of ``of``), the PyTorch
  transcription used (tests/reference/corpus_torch.py), and for seeds 0 and 1:
  - ``inputs``: ``corpus.inputs_for(module, of, text, seed)``, i.e. the arguments of the
    differentiated function ``of`` as tests/test_corpus.py draws them; each with dtype,
    shape and the SHA-256 of its bytes (C order), and its values when it has at most
    INPUT_DATA_LIMIT elements;
  - ``cotangents`` (``vjp`` only): one per output of ``of``, drawn with
    ``rng = np.random.default_rng(1000 + seed)`` (one generator per function and seed),
    then for each output in order ``rng.standard_normal(shape).astype(dtype)`` with the
    output's shape and dtype; a non-floating output gets zeros of its dtype and draws
    nothing (tapeless ignores its cotangent);
  - ``tangents`` (``jvp`` only): one per ``wrt`` name, drawn with
    ``rng = np.random.default_rng(2000 + seed)``, then for each ``wrt`` name in order
    ``rng.standard_normal(shape).astype(dtype)`` with that input's shape and dtype;
  - ``v`` (``hvp`` only): one per ``wrt`` name, the same with
    ``np.random.default_rng(4000 + seed)``; tangents and ``v`` are stored like ``inputs``
    (dtype, shape, sha256, values when at most INPUT_DATA_LIMIT elements);
  - ``outputs``: the outputs of ``of`` (the value for ``grad`` and ``hvp``), and
    ``grads`` (grad, vjp, hvp): one per ``wrt`` name, ``output_tangents`` (jvp): one per
    output, ``hvp`` (hvp): one Hessian-vector product per ``wrt`` name, from the torch
    counterpart of the generated function (``corpus_torch.derivative`` or
    ``corpus_torch.EXPLICIT``: autograd for grad/vjp, ``torch.func.jvp`` for jvp,
    ``torch.autograd.functional.hvp`` for hvp) evaluated on tensors of the inputs' own
    dtypes: float64 for f64 programs, float32 for f32 ones (mixed for dtypes.tl; f16
    inputs stay f16), integer inputs as integer tensors. The script checks jvp results
    against ``torch.autograd.functional.jvp`` (double-backward trick) and hvp results
    against reverse-over-reverse ``autograd.grad(sum(grad * v))``.

Besides, ``hvp_refs`` holds a second-order reference for every function the corpus
differentiates with ``grad``: for the function ``G`` of ``grad F wrt W [as G]``, the
program text with ``hvp F wrt W as G_hvp_ref`` appended (named after ``G``, not ``F``,
because regression.tl has two ``grad`` directives on ``loss``), recorded like an ``hvp``
directive above (``v`` from ``default_rng(4000 + seed)``; inputs those of ``F``).

Arrays are ``{"dtype", "shape", "data"}`` with ``data`` a nested list written with
``repr`` (shortest round trip, so f64 and f32 values are exact). A PyTorch gradient entry
that is not finite is written as ``null``; this is allowed only for the functions listed
in ``corpus_torch.TORCH_UNDEFINED`` (the entry then carries ``torch_undefined``, the
reason, and each seed ``torch_nonfinite``, the count) and fails the script anywhere else,
as does any non-finite output value. An output or gradient with more than DATA_LIMIT
elements (only mlp.tl's d_w1, 784 x 256) is stored as every ``sample_stride``-th element
of its C-order flattening (``sample``, at most SAMPLE_SIZE values) together with
``sum`` and ``norm`` (2-norm) of all its elements computed in float64, to keep the file
small. Each function and seed sits on one line, so a diff shows what changed.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))  # corpus.py, catalogue.py, util.py
sys.path.insert(0, str(HERE))   # corpus_torch.py

import corpus  # noqa: E402
import corpus_torch  # noqa: E402
from util import compile_module  # noqa: E402  (needs tapeless)

OUT = HERE / "corpus_refs.json"
SEEDS = (0, 1)
COTANGENT_SEED_OFFSET = 1000
TANGENT_SEED_OFFSET = 2000      # jvp: one tangent per wrt name
HVP_VECTOR_SEED_OFFSET = 4000   # hvp: one vector per wrt name
DERIVATIVE_KINDS = ("grad", "vjp", "jvp", "hvp")
# (rtol, atol as a fraction of max|check|) of the script's own cross-checks of jvp / hvp
# against a second torch evaluation (different summation orders: loose for f32)
SELF_CHECK_TOLERANCE = {torch.float64: (1e-10, 1e-12), torch.float32: (1e-4, 1e-5)}
INPUT_DATA_LIMIT = 1000      # inputs up to this many elements are stored with their values
DATA_LIMIT = 10000           # outputs / gradients above this many elements are sampled
SAMPLE_SIZE = 4096
COMMAND = "cd /work/main && /tmp/torchenv/bin/python tests/reference/make_corpus_refs.py"


# ---------------------------------------------------------------- helpers shared (by copy) with the test
def code_sha256(text: str) -> str:
    """SHA-256 of the program without comments and blank lines, each line stripped."""
    lines = [re.sub(r"#.*", "", line).strip() for line in text.splitlines()]
    return hashlib.sha256("\n".join(l for l in lines if l).encode()).hexdigest()


def array_sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def cotangents_for(outputs: list, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(COTANGENT_SEED_OFFSET + seed)
    cts = []
    for shape, dtype in outputs:
        dtype = np.dtype(dtype)
        if dtype.kind == "f":
            cts.append(np.asarray(rng.standard_normal(tuple(shape))).astype(dtype))
        else:
            cts.append(np.zeros(tuple(shape), dtype))
    return cts


def normals_like(arrays: list, offset: int, seed: int) -> list[np.ndarray]:
    """rng = default_rng(offset + seed); per array in order standard_normal(shape).astype(dtype)."""
    rng = np.random.default_rng(offset + seed)
    return [np.asarray(rng.standard_normal(np.shape(a))).astype(np.asarray(a).dtype) for a in arrays]


def hvp_ref_directive(module, grad_name: str) -> tuple[str, str]:
    """(name, directive) of the extra hvp recorded for the grad function `grad_name`."""
    meta = module.__tapeless__[grad_name]
    name = f"{source_name(module, grad_name)}_hvp_ref"
    return name, f"hvp {source_name(module, meta['of'])} wrt {', '.join(meta['wrt'])} as {name}"


def source_name(module, name: str) -> str:
    """A generated function's name in the .tl source (`lambda` for `lambda_`)."""
    return getattr(module, name).__doc__.splitlines()[0].split("(")[0].strip()


# ---------------------------------------------------------------- encoding
def as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def enc_input(a: np.ndarray) -> dict:
    a = np.asarray(a)
    d = {"dtype": str(a.dtype), "shape": list(a.shape), "sha256": array_sha256(a)}
    if a.size <= INPUT_DATA_LIMIT:
        d["data"] = a.tolist()
    return d


def enc(x, allow_nonfinite: bool, what: str) -> tuple[dict, int]:
    """(encoded array, number of non-finite entries written as null)."""
    a = as_numpy(x)
    bad = 0
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        bad = int(a.size - np.count_nonzero(finite))
        if bad and not allow_nonfinite:
            raise ValueError(f"{what}: PyTorch gives non-finite values {a!r}; if PyTorch really does "
                             f"not define them there, list the function in corpus_torch.TORCH_UNDEFINED")
    if a.size > DATA_LIMIT:
        if bad:
            raise ValueError(f"{what}: non-finite entries in a sampled array are not supported")
        stride = math.ceil(a.size / SAMPLE_SIZE)
        flat = a.reshape(-1)
        a64 = flat.astype(np.float64)
        return {"dtype": str(a.dtype), "shape": list(a.shape), "sample_stride": stride,
                "sample": flat[::stride].tolist(), "sum": float(np.sum(a64)),
                "norm": float(np.linalg.norm(a64))}, 0
    data = np.where(np.isfinite(a), a, None).tolist() if bad else a.tolist()
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": data}, bad


def dumps(obj) -> str:
    return json.dumps(obj, allow_nan=False, ensure_ascii=True)


# ---------------------------------------------------------------- torch counterparts
def to_torch(a: np.ndarray) -> torch.Tensor:
    a = np.asarray(a)
    t = torch.from_numpy(a.copy())
    return t.requires_grad_(True) if a.dtype.kind == "f" else t


def torch_function(program: str, module, name: str):
    """(torch function, description) for the generated function `name` of `module`."""
    meta = module.__tapeless__[name]
    table = corpus_torch.PROGRAMS.get(program)
    if table is None:
        raise SystemExit(f"{program} asks for derivatives but has no transcription in "
                         f"tests/reference/corpus_torch.py: write one (PROGRAMS[{program!r}])")
    if meta["kind"] == "fn":
        src = source_name(module, name)
        if src not in table:
            raise SystemExit(f"{program}: function {src!r} has no transcription in "
                             f"corpus_torch.PROGRAMS[{program!r}]")
        return table[src], f"corpus_torch.{table[src].__name__}"
    if meta["kind"] in DERIVATIVE_KINDS:
        f, f_desc = torch_function(program, module, meta["of"])
        of_params = module.__tapeless__[meta["of"]]["params"]
        generic = corpus_torch.derivative(meta["kind"], f, of_params, meta["wrt"])
        desc = f"derivative({meta['kind']!r}, {f_desc}, wrt={list(meta['wrt'])})"
        if (program, name) in corpus_torch.EXPLICIT:
            explicit = corpus_torch.EXPLICIT[(program, name)]
            return _checked(explicit, generic, name), f"corpus_torch.{explicit.__name__} (checked against {desc})"
        return generic, desc
    raise SystemExit(f"{program}: cannot transcribe {name!r} of kind {meta['kind']!r}")


def _checked(explicit, generic, name):
    def run(*args):
        want = explicit(*args)
        other = generic(*args)
        assert len(want) == len(other), name
        for w, o in zip(want, other):
            torch.testing.assert_close(o, w, rtol=1e-13, atol=1e-13, msg=f"{name}: derivative() disagrees")
        return want
    return run


# ---------------------------------------------------------------- recording
def record_function(program: str, module, text: str, name: str, seed: int, undefined: str | None):
    meta = module.__tapeless__[name]
    of = meta["of"]
    of_params = list(module.__tapeless__[of]["params"])
    fn, _ = torch_function(program, module, name)
    f, _ = torch_function(program, module, of)

    args = corpus.inputs_for(module, of, text, seed)
    assert len(args) == len(of_params), (program, name)
    tensors = [to_torch(a) for a in args]

    outs = f(*tensors)
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    rec = {"seed": seed, "inputs": {k: enc_input(a) for k, a in zip(of_params, args)}}
    extra = []
    kind = meta["kind"]
    wrt_args = [args[of_params.index(k)] for k in meta["wrt"]]
    if kind == "vjp":
        cts = cotangents_for([(tuple(o.shape), str(o.dtype).replace("torch.", "")) for o in outs], seed)
        rec["cotangents"] = [enc(c, False, f"{name} cotangent")[0] for c in cts]
        extra = [torch.from_numpy(c.copy()) for c in cts]
    elif kind == "jvp":
        tangents = normals_like(wrt_args, TANGENT_SEED_OFFSET, seed)
        rec["tangents"] = {k: enc_input(t) for k, t in zip(meta["wrt"], tangents)}  # like an input
        extra = [torch.from_numpy(t.copy()) for t in tangents]
    elif kind == "hvp":
        vs = normals_like(wrt_args, HVP_VECTOR_SEED_OFFSET, seed)
        rec["v"] = {k: enc_input(v) for k, v in zip(meta["wrt"], vs)}  # like an input
        extra = [torch.from_numpy(v.copy()) for v in vs]

    result = fn(*tensors, *extra)
    n_out = len(outs)
    n_wrt = len(meta["wrt"])
    # (*outputs, *d_wrt) for grad/vjp, (*outputs, *output_tangents) for jvp, (value, *d_wrt, *hv_wrt) for hvp
    n_expected = {"jvp": 2 * n_out, "hvp": n_out + 2 * n_wrt}.get(kind, n_out + n_wrt)
    assert len(result) == n_expected, (program, name, len(result))
    got_outs, got_grads = result[:n_out], result[n_out:n_out + n_wrt]  # (got_grads: not for jvp)
    for o, o2 in zip(outs, got_outs):  # the directive's outputs are f's outputs
        torch.testing.assert_close(o2, o, rtol=0, atol=0, equal_nan=True)
    if kind == "jvp":
        # torch.func.jvp against the double-backward trick of torch.autograd.functional.jvp
        g = _of_wrt(f, tensors, of_params, meta["wrt"])
        _, check = torch.autograd.functional.jvp(g, tuple(t.detach() for t in
                                                          (tensors[of_params.index(k)] for k in meta["wrt"])),
                                                 tuple(extra))
        for t, c in zip(result[n_out:], check if isinstance(check, tuple) else (check,)):
            rtol, atol = SELF_CHECK_TOLERANCE[c.dtype]
            torch.testing.assert_close(t, c, rtol=rtol, atol=atol * float(torch.nan_to_num(c).abs().max()),
                                       equal_nan=True,
                                       msg=f"{program} {name}: torch.func.jvp and autograd.functional.jvp disagree")
        rec["outputs"] = [enc(o, False, f"{program} {name} output {i}")[0] for i, o in enumerate(got_outs)]
        rec["output_tangents"] = []
        n_bad = 0
        for i, t in enumerate(result[n_out:]):
            e, bad = enc(t, undefined is not None, f"{program} {name} output tangent {i}")
            rec["output_tangents"].append(e)
            n_bad += bad
        if undefined is not None:
            rec["torch_nonfinite"] = n_bad
        return rec, n_bad

    n_bad = 0
    rec["outputs"] = []
    for i, o in enumerate(got_outs):
        e, _ = enc(o, False, f"{program} {name} output {i}")  # values must always be finite
        rec["outputs"].append(e)
    rec["grads"] = {}
    for k, g in zip(meta["wrt"], got_grads):
        e, bad = enc(g, undefined is not None, f"{program} {name} d_{k}")
        rec["grads"][k] = e
        n_bad += bad
    if kind == "hvp":
        hv = result[n_out + n_wrt:]
        # torch.autograd.functional.hvp against reverse over reverse: grad(sum(grad * v))
        xs = [tensors[of_params.index(k)].detach().clone().requires_grad_(True) for k in meta["wrt"]]
        g = _of_wrt(f, tensors, of_params, meta["wrt"])
        d = torch.autograd.grad(g(*xs), xs, create_graph=True, allow_unused=True)
        dots = [torch.sum(di * vi) for di, vi in zip(d, extra) if di is not None and di.requires_grad]
        check = (torch.autograd.grad(sum(dots), xs, allow_unused=True) if dots else [None] * len(xs))
        # scale: a Hessian that is 0 mathematically (use_polar: sum(r * (y / r))) is rounding
        # noise on both sides, so the absolute tolerance is relative to the gradient as well
        scale = max(float(torch.nan_to_num(t.detach()).abs().max()) for t in (*check_or_zeros(check, xs), *got_grads))
        for k, h, c, x in zip(meta["wrt"], hv, check, xs):
            c = torch.zeros_like(x) if c is None else c
            rtol, atol = SELF_CHECK_TOLERANCE[c.dtype]
            torch.testing.assert_close(h, c, rtol=rtol, atol=atol * scale,
                                       equal_nan=True,
                                       msg=f"{program} {name}: hvp wrt {k}: autograd.functional.hvp and "
                                           f"reverse over reverse disagree")
        rec["hvp"] = {}
        for k, h in zip(meta["wrt"], hv):
            e, bad = enc(h, undefined is not None, f"{program} {name} hv_{k}")
            rec["hvp"][k] = e
            n_bad += bad
    if undefined is not None:
        rec["torch_nonfinite"] = n_bad
    return rec, n_bad


def check_or_zeros(check, xs) -> list:
    return [torch.zeros_like(x) if c is None else c for c, x in zip(check, xs)]


def _of_wrt(f, tensors: list, params: list, wrt) -> object:
    """f as a function of the wrt tensors, the other arguments fixed; one output (or a tuple)."""
    idx = [params.index(k) for k in wrt]

    def g(*xs):
        a = list(tensors)
        for i, x in zip(idx, xs):
            a[i] = x
        return f(*a)

    return g


def record_entry(program: str, module, text: str, name: str, extra_meta: dict | None = None):
    """(one function's block, notes) for the generated function `name` of `module`."""
    meta = module.__tapeless__
    info = meta[name]
    of_src = source_name(module, info["of"])
    root = info["of"]
    while meta[root]["kind"] != "fn":  # a directive on a derivative function
        root = meta[root]["of"]
    undefined = corpus_torch.TORCH_UNDEFINED.get((program, source_name(module, root)))
    _, desc = torch_function(program, module, name)
    entry = dict(extra_meta or {})
    entry.update({
        "kind": info["kind"], "of": info["of"], "of_source": of_src, "wrt": list(info["wrt"]),
        "params": list(info["params"]), "n_outputs_of": meta[info["of"]]["n_outputs"],
        "torch": desc,
    })
    if undefined is not None:
        entry["torch_undefined"] = undefined
    seeds, notes = [], []
    total_bad = 0
    for s in SEEDS:
        rec, bad = record_function(program, module, text, name, s, undefined)
        total_bad += bad
        seeds.append(f"    {dumps(str(s))}: {dumps(rec)}")
    if undefined is not None:
        notes.append(f"{program} {name}: {total_bad} non-finite PyTorch entries recorded as null")
    block = f"  {dumps(name)}: {dumps(entry)[:-1]}, \"seeds\": {{\n" + ",\n".join(seeds) + "}}"
    return block, notes, total_bad


def record_hvp_refs(path: Path, workdir: Path):
    """The `hvp_refs` block of a program (None when it has no grad directive): for each grad
    function G, `hvp F wrt W as G_hvp_ref` appended to the program text."""
    program = path.relative_to(ROOT).as_posix()
    text = path.read_text()
    module = compile_module(text, workdir, path=path.name)
    grads = [k for k, v in module.__tapeless__.items() if v["kind"] == "grad"]
    if not grads:
        return None, 0, []
    blocks, notes = [], []
    for grad_name in grads:
        ref, directive = hvp_ref_directive(module, grad_name)
        extended = compile_module(f"{text}\n{directive}\n", workdir, path=path.name)
        (name,) = [k for k, v in extended.__tapeless__.items()
                   if v["kind"] == "hvp" and source_name(extended, k) == ref]
        block, nb, _ = record_entry(program, extended, text, name,
                                    {"grad_function": grad_name, "directive": directive})
        blocks.append(block)
        notes += nb
    head = {"code_sha256": code_sha256(text)}
    block = f"{dumps(program)}: {dumps(head)[:-1]}, \"functions\": {{\n" + ",\n".join(blocks) + "\n}}"
    return block, len(grads), notes


def record_program(path: Path, workdir: Path):
    program = path.relative_to(ROOT).as_posix()
    text = path.read_text()
    module = compile_module(text, workdir, path=path.name)
    meta = module.__tapeless__
    names = [k for k, v in meta.items() if v["kind"] in DERIVATIVE_KINDS]
    blocks, notes = [], []
    for name in names:
        block, nb, total_bad = record_entry(program, module, text, name)
        if nb and not total_bad:
            raise SystemExit(f"{program} {name}: listed in TORCH_UNDEFINED but PyTorch is finite "
                             f"everywhere on the recorded inputs; drop the entry or change the inputs")
        notes += nb
        blocks.append(block)
    head = {"code_sha256": code_sha256(text), "directive_functions": names}
    block = (f"{dumps(program)}: {dumps(head)[:-1]}, \"functions\": {{\n" + ",\n".join(blocks)
             + ("\n" if blocks else "") + "}}")
    return block, len(names), notes


def main() -> None:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    header = {
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "command": COMMAND,
        "ran_as": shlex.join([sys.executable, *sys.argv]) + f"  (cwd {os.getcwd()})",
        "seeds": list(SEEDS),
        "inputs": "tests/corpus.py inputs_for(module, of, text, seed) on the module compiled with path=<file name>; "
                  "stored with dtype, shape, sha256 of the C-order bytes, and data if at most "
                  f"{INPUT_DATA_LIMIT} elements",
        "cotangents": "vjp only: rng = np.random.default_rng(1000 + seed), then per output of `of` in order: "
                      "rng.standard_normal(output.shape).astype(output.dtype) (non-floating outputs: zeros, no draw)",
        "tangents": "jvp only: rng = np.random.default_rng(2000 + seed), then per wrt name in order: "
                    "rng.standard_normal(input.shape).astype(input.dtype); torch.func.jvp",
        "hvp": "hvp only: v: rng = np.random.default_rng(4000 + seed), then per wrt name in order: "
               "rng.standard_normal(input.shape).astype(input.dtype); torch.autograd.functional.hvp "
               "(and torch.autograd.grad for the gradient)",
        "hvp_refs": "for each function G generated by `grad F wrt W [as G]`: the program text with "
                    "`hvp F wrt W as G_hvp_ref` appended, recorded like an hvp directive",
        "torch_dtypes": "each input as a tensor of its own dtype (f64 programs in float64, f32 programs in float32)",
        "null": "a non-finite PyTorch gradient (or output tangent, or Hessian-vector product) entry; only in "
                "functions with `torch_undefined` (the reason), "
                "where tapeless must give exactly 0",
        "sampling": f"arrays with more than {DATA_LIMIT} elements: every sample_stride-th element of the "
                    f"C-order flattening (stride ceil(size / {SAMPLE_SIZE})), plus float64 sum and 2-norm",
        "transcriptions": "tests/reference/corpus_torch.py",
        "regenerate": "see tests/reference/README.md",
    }
    blocks, ref_blocks, notes, n_functions, n_refs = [], [], [], 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in corpus.PROGRAMS:
            block, n, nb = record_program(path, Path(tmp))
            blocks.append(block)
            notes += nb
            n_functions += n
        for path in corpus.PROGRAMS:
            block, n, nb = record_hvp_refs(path, Path(tmp))
            if block is not None:
                ref_blocks.append(block)
            notes += nb
            n_refs += n
    text = ("{\n" + f'"header": {json.dumps(header, indent=1)},\n' + '"programs": {\n'
            + ",\n".join(blocks) + "\n},\n" + '"hvp_refs": {\n' + ",\n".join(ref_blocks) + "\n}\n}\n")

    # Self-check: valid JSON, every program present, inputs re-drawn identically.
    data = json.loads(text)
    assert list(data["programs"]) == [p.relative_to(ROOT).as_posix() for p in corpus.PROGRAMS]
    assert set(data["hvp_refs"]) <= set(data["programs"])
    OUT.write_text(text)
    for n in notes:
        print(n)
    print(f"wrote {OUT} ({len(blocks)} programs, {n_functions} derivative functions and {n_refs} hvp_refs "
          f"x {len(SEEDS)} seeds, "
          f"torch {torch.__version__}, {len(text) // 1024} KiB)")


if __name__ == "__main__":
    main()
