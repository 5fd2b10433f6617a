"""cupy.ElementwiseKernel and cupy.ReductionKernel run on the CPU: their C++ compiled by g++.

The CuPy backend writes fused chains as CuPy kernel objects whose bodies are CUDA C++. With
no GPU here, these two classes take the same constructor arguments and calls, put the body
into a C++ translation unit that defines CuPy's conventions (cupy_kernels_driver.cpp: the
loop index `i` and `_ind.size()`, non-raw parameters as one element each, `const` for inputs
and a reference for outputs, raw parameters as arrays indexed by a flat C-order index, the
CUDA math functions of <cmath>, `min`/`max` as CUDA's), compile it with `g++ -O2` into a
shared library (cached by the source's hash in a temporary directory) and call it through
ctypes on NumPy arrays, broadcast as CuPy broadcasts them:

- ElementwiseKernel: every non-raw parameter, inputs and given outputs alike, is broadcast to
  one shape; outputs not given are allocated in that shape with their declared dtype; an
  input of a declared type must have it (scalars are converted to it).
- ReductionKernel: the inputs are broadcast, the axes `axis` (None: all) are reduced with
  `reduce_expr` over `a` and `b` (in `reduce_type`, default the first output's type),
  starting from `identity`, each element mapped by `map_expr` first, and the result `a`
  written by `post_map_expr`; `_in_ind.size()` and `_out_ind.size()` are the element counts
  before and after. The reduction runs as a GPU's does: strided partial results per thread
  (256 of them), then combined pairwise, so a float32 sum is as exact as on the device.

Stricter than CuPy where that catches a generator's mistake: an array argument whose dtype
differs from its declared type is a TypeError (CuPy would convert it).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
from pathlib import Path
import re
import shutil
import subprocess
import tempfile

import numpy

DRIVER = (Path(__file__).parent / "cupy_kernels_driver.cpp").read_text()
MAX_NDIM = 16
THREADS = 256  # the partial results of a reduction, as one block of a GPU computes them

CTYPES = {"float32": "float", "float64": "double", "int8": "signed char", "int16": "short", "int32": "int",
          "int64": "long long", "uint8": "unsigned char", "uint16": "unsigned short", "uint32": "unsigned int",
          "uint64": "unsigned long long", "bool": "bool"}


def compiler() -> str | None:
    """The C++ compiler the harness uses, or None (tests then skip)."""
    return shutil.which(os.environ.get("CXX", "g++"))


class _Array(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("ndim", ctypes.c_longlong), ("size", ctypes.c_longlong),
                ("shape", ctypes.c_longlong * MAX_NDIM), ("strides", ctypes.c_longlong * MAX_NDIM)]


def _describe(a: numpy.ndarray) -> _Array:
    if a.ndim > MAX_NDIM:
        raise ValueError(f"at most {MAX_NDIM} dimensions")
    d = _Array()
    d.data = a.ctypes.data
    d.ndim = a.ndim
    d.size = a.size
    for k in range(a.ndim):
        d.shape[k] = a.shape[k]
        d.strides[k] = a.strides[k]
    return d


# ---- parameters ---------------------------------------------------------------------------------------
class Param:
    def __init__(self, text: str, is_input: bool):
        words = text.split()
        self.raw = words[0] == "raw"
        if self.raw:
            words = words[1:]
        if len(words) != 2:
            raise ValueError(f"bad parameter {text!r}")
        self.type_name, self.name = words
        self.is_input = is_input
        self.dtype = numpy.dtype(self.type_name) if self.type_name in CTYPES else None  # None: a placeholder

    def __repr__(self):
        return f"Param({'raw ' if self.raw else ''}{self.type_name} {self.name})"


def parse_params(text: str, is_input: bool) -> list[Param]:
    return [Param(p.strip(), is_input) for p in text.split(",") if p.strip()]


def _bind_types(params: list[Param], args: list) -> dict[str, numpy.dtype]:
    """Placeholder type name -> dtype, from the array arguments first, then the scalars."""
    types: dict[str, numpy.dtype] = {}
    for scalars in (False, True):
        for p, a in zip(params, args):
            if p.dtype is not None or a is None or isinstance(a, numpy.ndarray) == scalars:
                continue
            dt = numpy.asarray(a).dtype
            if p.type_name in types and types[p.type_name] != dt and not scalars:
                raise TypeError(f"type {p.type_name} is both {types[p.type_name]} and {dt}")
            types.setdefault(p.type_name, dt)
    return types


def _typed(p: Param, a, types: dict[str, numpy.dtype]) -> numpy.ndarray:
    dt = p.dtype if p.dtype is not None else types[p.type_name]
    if isinstance(a, numpy.ndarray):
        if a.dtype != dt:
            raise TypeError(f"parameter {p.name} is {dt}, got an array of {a.dtype}")
        return a
    if not isinstance(a, (int, float, bool, numpy.generic)):
        raise TypeError(f"parameter {p.name}: unsupported argument {type(a).__name__}")
    return numpy.asarray(a, dtype=dt)


def _declarations(params: list[Param], types: dict[str, numpy.dtype], index: str) -> tuple[list[str], list[str]]:
    """The typedefs of the placeholders and each parameter's declaration in the loop (`index`:
    the flat element index of the non-raw ones) or before it (raw)."""
    typedefs = [f"typedef {CTYPES[dt.name]} {name};" for name, dt in sorted(types.items())]
    decls = []
    for k, p in enumerate(params):
        ctype = CTYPES[p.dtype.name] if p.dtype is not None else p.type_name
        if p.raw:
            decls.append(f"CArray<{ctype}> {p.name}(_args[{k}]);")
        elif p.is_input:
            decls.append(f"const {ctype} {p.name} = *(const {ctype}*)_tl_at(_args[{k}], {index});")
        else:
            decls.append(f"{ctype} &{p.name} = *({ctype}*)_tl_at(_args[{k}], {index});")
    return typedefs, decls


# ---- compiling and loading ------------------------------------------------------------------------------------
_LOADED: dict[str, ctypes.CDLL] = {}


def cache_dir() -> Path:
    d = Path(os.environ.get("TAPELESS_CUPY_CPU_CACHE", Path(tempfile.gettempdir()) / "tapeless_cupy_cpu"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def load(source: str) -> ctypes.CDLL:
    """The translation unit compiled (once per source text) and loaded."""
    key = hashlib.sha256(source.encode()).hexdigest()[:24]
    lib = _LOADED.get(key)
    if lib is not None:
        return lib
    so = cache_dir() / f"k_{key}.so"
    if not so.exists():
        cxx = compiler()
        if cxx is None:
            raise RuntimeError("no C++ compiler (g++) to run CuPy kernels on the CPU")
        src = cache_dir() / f"k_{key}.{os.getpid()}.cpp"
        src.write_text(source)
        tmp = so.with_suffix(f".{os.getpid()}.tmp")
        done = subprocess.run([cxx, "-O2", "-std=c++17", "-shared", "-fPIC", "-o", str(tmp), str(src)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise CompileError(f"g++ failed on the kernel:\n{done.stderr}\n---- source ----\n{_numbered(source)}")
        os.replace(tmp, so)  # atomic: a concurrent run sees the whole library or none
        src.unlink()
    lib = _LOADED[key] = ctypes.CDLL(str(so))
    return lib


class CompileError(Exception):
    pass


def _numbered(source: str) -> str:
    return "\n".join(f"{k + 1:4} {line}" for k, line in enumerate(source.splitlines()))


def _unit(preamble: str, body: str) -> str:
    return DRIVER.replace("/*PREAMBLE*/", preamble).replace("/*KERNEL*/", body)


def _outputs(outs: list[numpy.ndarray]):
    return outs[0] if len(outs) == 1 else tuple(outs)


# ---- the kernels ------------------------------------------------------------------------------------------------
class ElementwiseKernel:
    """cupy.ElementwiseKernel(in_params, out_params, operation, name, preamble=...) on the CPU."""

    def __init__(self, in_params: str, out_params: str, operation: str, name: str = "kernel",
                 reduce_dims: bool = True, preamble: str = "", no_return: bool = False, **kwargs):
        self.in_params = parse_params(in_params, True)
        self.out_params = parse_params(out_params, False)
        self.params = self.in_params + self.out_params
        self.operation = operation
        self.name = name
        self.preamble = preamble
        self.no_return = no_return
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise ValueError(f"bad kernel name {name!r}")

    def source(self, types: dict[str, numpy.dtype]) -> str:
        typedefs, decls = _declarations(self.params, types, "i")
        raw = [d for d, p in zip(decls, self.params) if p.raw]
        each = [d for d, p in zip(decls, self.params) if not p.raw]
        body = "\n".join([
            f'extern "C" void {self.name}(const _TLArray* _args, long long _n) {{',
            *("    " + t for t in typedefs),
            "    _TLIndex _ind(_n);",
            *("    " + d for d in raw),
            "    for (ptrdiff_t i = 0; i < _n; ++i) {",
            *("        " + d for d in each),
            "        {",
            self.operation + ";",  # (as CuPy: `${operation};`)
            "        }",
            "    }",
            "}",
        ])
        return _unit(self.preamble, body)

    def __call__(self, *args, size: int | None = None):
        n_in, n_all = len(self.in_params), len(self.params)
        if len(args) not in (n_in, n_all):
            raise TypeError(f"{self.name}: wrong number of arguments ({len(args)}; {n_in} or {n_all} expected)")
        args = list(args) + [None] * (n_all - len(args))
        types = _bind_types(self.params, args)
        for p in self.out_params:
            if p.dtype is None and p.type_name not in types:
                raise TypeError(f"{self.name}: the type {p.type_name} of output {p.name} is unknown")
        typed = [None if a is None else _typed(p, a, types) for p, a in zip(self.params, args)]
        shapes = [a.shape for p, a in zip(self.params, typed) if a is not None and not p.raw]
        if shapes:
            shape = numpy.broadcast_shapes(*shapes)
            if size is not None:
                raise ValueError(f"{self.name}: size= is for kernels without non-raw array arguments")
        elif size is not None:
            shape = (size,)
        else:
            raise ValueError(f"{self.name}: loop size is undecided (no non-raw arguments and no size=)")
        arrays = []
        for p, a in zip(self.params, typed):
            if a is None:  # an output not given
                a = numpy.empty(shape, p.dtype if p.dtype is not None else types[p.type_name])
            elif not p.is_input and not p.raw and a.shape != shape:
                raise ValueError(f"{self.name}: output {p.name} has shape {a.shape}, the loop {shape}")
            if not p.is_input and not a.flags.writeable:
                raise ValueError(f"{self.name}: output {p.name} is read-only")
            arrays.append(a)
        views = [a if p.raw else numpy.broadcast_to(a, shape) for p, a in zip(self.params, arrays)]
        lib = load(self.source(types))
        descs = (_Array * len(views))(*[_describe(v) for v in views])
        fn = getattr(lib, self.name)
        fn.argtypes = [ctypes.POINTER(_Array), ctypes.c_longlong]
        fn(descs, int(numpy.prod(shape, dtype=numpy.int64)))
        if self.no_return:
            return None
        return _outputs(arrays[len(self.in_params):])


class ReductionKernel:
    """cupy.ReductionKernel(in_params, out_params, map_expr, reduce_expr, post_map_expr, identity,
    name, reduce_type=None, preamble=...) on the CPU."""

    def __init__(self, in_params: str, out_params: str, map_expr: str, reduce_expr: str, post_map_expr: str,
                 identity: str | None, name: str = "reduce_kernel", reduce_type: str | None = None,
                 reduce_dims: bool = True, preamble: str = "", options=()):
        self.in_params = parse_params(in_params, True)
        self.out_params = parse_params(out_params, False)
        if any(p.raw for p in self.in_params + self.out_params):
            raise NotImplementedError("raw parameters in a ReductionKernel: not supported by the CPU harness")
        self.map_expr, self.reduce_expr, self.post_map_expr = map_expr, reduce_expr, post_map_expr
        self.identity = identity
        self.name = name
        self.reduce_type = reduce_type
        self.preamble = preamble

    def source(self, types: dict[str, numpy.dtype]) -> str:
        typedefs, in_decls = _declarations(self.in_params, types, "_o * _n_red + _j")
        _, out_decls = _declarations(self.out_params, types, "_o")
        out_decls = [d.replace(f"_args[{k}]", f"_args[{k + len(self.in_params)}]") for k, d in enumerate(out_decls)]
        first = self.out_params[0]
        reduce_c = self.reduce_type or (CTYPES[first.dtype.name] if first.dtype is not None else first.type_name)
        reduce_c = CTYPES.get(reduce_c, reduce_c)
        identity = self.identity
        body = "\n".join([
            f'extern "C" void {self.name}(const _TLArray* _args, long long _n_out, long long _n_red) {{',
            *("    " + t for t in typedefs),
            f"    typedef {reduce_c} _type_reduce;",
            "    _TLIndex _in_ind(_n_out * _n_red), _out_ind(_n_out);",
            "    auto _reduce = [&](const _type_reduce &a, const _type_reduce &b) -> _type_reduce {",
            f"        return ({self.reduce_expr});",
            "    };",
            "    auto _map = [&](long long _o, long long _j) -> _type_reduce {",
            *("        " + d for d in in_decls),
            f"        return ({self.map_expr});",
            "    };",
            f"    const int _threads = {THREADS};",
            "    _type_reduce _part[_threads];",
            "    for (long long _o = 0; _o < _n_out; ++_o) {",
            "        int _used = 0;",
            "        for (int _t = 0; _t < _threads && _t < _n_red; ++_t, ++_used) {",
            (f"            _type_reduce _s = ({identity});" if identity is not None else
             "            _type_reduce _s = _map(_o, _t);"),
            f"            for (long long _j = _t{' + _threads' if identity is None else ''}; _j < _n_red; "
            "_j += _threads) _s = _reduce(_s, _map(_o, _j));",
            "            _part[_t] = _s;",
            "        }",
            "        for (int _w = 1; _w < _used; _w *= 2)",
            "            for (int _t = 0; _t + _w < _used; _t += 2 * _w) _part[_t] = _reduce(_part[_t], _part[_t + _w]);",
            (f"        _type_reduce a = _used ? _part[0] : _type_reduce({identity});" if identity is not None else
             "        _type_reduce a = _part[0];"),
            *("        " + d for d in out_decls),
            "        {",
            self.post_map_expr + ";",
            "        }",
            "    }",
            "}",
        ])
        return _unit(self.preamble, body)

    def __call__(self, *args, out=None, axis=None, keepdims: bool = False, stream=None):
        n_in = len(self.in_params)
        if len(args) not in (n_in, n_in + len(self.out_params)):
            raise TypeError(f"{self.name}: wrong number of arguments")
        outs = list(args[n_in:]) or ([None] * len(self.out_params))
        if out is not None:
            if len(self.out_params) != 1 or args[n_in:]:
                raise TypeError(f"{self.name}: out= with outputs given or several outputs")
            outs = [out]
        params = self.in_params + self.out_params
        types = _bind_types(params, list(args[:n_in]) + outs)
        inputs = [_typed(p, a, types) for p, a in zip(self.in_params, args[:n_in])]
        shape = numpy.broadcast_shapes(*[a.shape for a in inputs])
        rank = len(shape)
        axes = tuple(range(rank)) if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
        axes = tuple(sorted(a % rank if -rank <= a < rank else _axis_error(a, rank) for a in axes)) if rank else ()
        if len(set(axes)) != len(axes):
            raise ValueError("duplicate value in axis")
        kept = [k for k in range(rank) if k not in axes]
        n_red = int(numpy.prod([shape[k] for k in axes], dtype=numpy.int64))
        n_out = int(numpy.prod([shape[k] for k in kept], dtype=numpy.int64))
        if n_red == 0 and self.identity is None and n_out:
            raise ValueError(f"{self.name}: zero-size reduction without an identity")
        out_shape = tuple(1 if k in axes else shape[k] for k in range(rank)) if keepdims else \
            tuple(shape[k] for k in kept)
        out_arrays = []
        for p, o in zip(self.out_params, outs):
            dt = p.dtype if p.dtype is not None else types.get(p.type_name)
            if o is None:
                if dt is None:
                    raise TypeError(f"{self.name}: the type {p.type_name} of output {p.name} is unknown")
                o = numpy.empty(out_shape, dt)
            else:
                o = _typed(p, o, types)
                if o.shape != out_shape:
                    raise ValueError(f"{self.name}: output {p.name} has shape {o.shape}, the result {out_shape}")
            out_arrays.append(o)
        # every input as [kept..., reduced...]: element (o, j) is at flat index o * n_red + j
        moved = [numpy.broadcast_to(a, shape).transpose(kept + list(axes)) for a in inputs]
        flat_outs = [o.reshape(tuple(shape[k] for k in kept)) if keepdims else o for o in out_arrays]
        for o, f in zip(out_arrays, flat_outs):
            if not numpy.shares_memory(o, f) and o.size:
                raise AssertionError("keepdims output reshaped to a copy")  # pragma: no cover
        lib = load(self.source(types))
        descs = (_Array * (len(moved) + len(flat_outs)))(*[_describe(v) for v in moved + flat_outs])
        fn = getattr(lib, self.name)
        fn.argtypes = [ctypes.POINTER(_Array), ctypes.c_longlong, ctypes.c_longlong]
        fn(descs, n_out, n_red)
        return _outputs(out_arrays)


def _axis_error(a, rank):
    raise numpy.exceptions.AxisError(a, rank)
