"""Vectorisable math for numba kernels: source text of small jittable functions, and which to use.

numba from PyPI has no SVML, so `np.exp(x)` in a `prange` loop is a scalar libm call and the loop
does not vectorise. The forms here are branch-free (clamps and selects, polynomials, exponent bits
built by an intrinsic), so LLVM vectorises a loop that calls them. Each is the text of one
function that a generated module pastes (it imports only numpy as np and numba).

Interface (the numba backend uses only these):
    FORMS[(fname, dtype)] -> Form(name, source, uses)
        fname is a scalar-facet function name (primitives/common.py SCALAR_FUNCTIONS), or the
        name of a whole elementwise primitive with a form of its own (sigmoid, softplus);
        dtype is "float32" or "float64". `uses` names the forms/intrinsics it calls.
    USE[(fname, dtype)] -> "form" | "libm" | "ufunc": what the backend should do, measured
        (the DECISIONS table below, with its figures): "form" calls FORMS[...].name in the
        kernel, "libm" calls np.<fname> in the kernel (numba's scalar libm call), "ufunc" leaves
        the op to a NumPy ufunc outside the kernel.
    KERNEL_FLAGS: the njit keyword text a kernel calling the forms must have.
    call(fname, dtype, args) -> str | None: the kernel's call text ("_tl_exp_f32(a)" or
        "np.exp(a)"), None when the op should stay a NumPy ufunc or is not in the table.
    source(names) -> str: the definitions of those forms and all they use, each once, in order,
        to paste into a generated module after `import numpy as np` and `import numba`.

Accuracy (benchmarks/ulp_report.py measures it; tests/test_numba_math.py asserts it) is in the
DECISIONS table. Extremes follow libm: overflow to inf, underflow through the subnormals to 0,
log(0) = -inf, log(x < 0) = nan, nan propagates.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...primitives.common import SCALAR_FUNCTIONS


@dataclass(frozen=True)
class Form:
    name: str               # the function the pasted source defines
    source: str             # its definition (decorator included)
    uses: tuple[str, ...]   # names of forms whose definitions must come first


# numba inlines the forms into the kernel's IR (plain njit callees were not always inlined by
# LLVM: tanh and softplus in float64, which call a second form, stayed scalar calls). Inlined,
# they compile under the kernel's flags, which must be KERNEL_FLAGS: error_model="numpy" (no
# zero-division branch, so divisions vectorise) and fastmath={"contract"} (only a * b + c -> fma,
# which rounds once instead of twice; exp float32 1.39 -> 0.84 ms for 2M on one thread).
# The accuracy in DECISIONS was measured with these flags.
DECORATOR = '@numba.njit(inline="always")'
KERNEL_FLAGS = 'error_model="numpy", fastmath={"contract"}'

# numba's threads: OpenMP's (numba's default layer here) spin while they wait; on a machine whose
# cores other processes use, a kernel then waits for a descheduled spinner. Passive waiting,
# unless the user chose (the variable is read when numba first starts its threads): W5's
# gradient over 2M f32, 2 cores, loaded: 1.4-8.0 ms spinning, 2.6-2.7 ms passive, 2.6-2.7 ms with
# the workqueue layer, which is as fast but not thread-safe (numba aborts the process when two
# Python threads launch kernels at once; these kernels release the GIL).
THREADS = """\
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "passive"  # (numba's OpenMP threads sleep when idle: numba_math.THREADS)
"""

# ---- the intrinsics: float <-> int bit patterns, which plain numba Python cannot express -----
_INTRINSICS = '''\
@numba.extending.intrinsic
def _tl_bits(typingctx, x):
    """The bit pattern of a float as the signed integer of its width."""
    width = {numba.types.float32: numba.types.int32, numba.types.float64: numba.types.int64}
    if x not in width:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(sig.return_type))
    return width[x](x), codegen


@numba.extending.intrinsic
def _tl_f32(typingctx, i):
    """The float32 whose bit pattern is the low 32 bits of the integer i."""
    if not isinstance(i, numba.types.Integer):
        return None

    def codegen(context, builder, sig, args):
        i32 = context.get_value_type(numba.types.int32)
        v = builder.trunc(args[0], i32) if i.bitwidth > 32 else args[0]
        return builder.bitcast(v, context.get_value_type(numba.types.float32))
    return numba.types.float32(i), codegen


@numba.extending.intrinsic
def _tl_f64(typingctx, i):
    """The float64 whose bit pattern is the integer i (64 bits)."""
    if not isinstance(i, numba.types.Integer) or i.bitwidth != 64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(numba.types.float64))
    return numba.types.float64(i), codegen


@numba.extending.intrinsic
def _tl_pow2(typingctx, n):
    """2.0 ** n for an integer-valued float n in the normal exponent range. n + 1.5 * 2**m (m
    the mantissa width) holds n in its low bits, so the exponent field is built with integer
    adds and a shift, no float-to-int conversion (which AVX2 lacks for 64 bits)."""
    if n not in (numba.types.float32, numba.types.float64):
        return None

    def codegen(context, builder, sig, args):
        single = sig.return_type == numba.types.float32
        fty = context.get_value_type(sig.return_type)
        ity = context.get_value_type(numba.types.int32 if single else numba.types.int64)
        mant, bias = (23, 127) if single else (52, 1023)
        magic_bits = 0x4B400000 if single else 0x4338000000000000
        t = builder.fadd(args[0], fty(1.5 * 2.0 ** mant))
        e = builder.add(builder.bitcast(t, ity), ity(bias - magic_bits))
        return builder.bitcast(builder.shl(e, ity(mant)), fty)
    return n(n), codegen
'''


@dataclass(frozen=True)
class _D:
    """What differs between the float32 and float64 versions of a form."""
    suffix: str
    np: str            # the scalar constructor
    magic: str         # 1.5 * 2**mantissa bits: adding and subtracting it rounds to an integer

    def c(self, v) -> str:
        """A constant of this width (a bare Python float is float64 in numba and would widen
        every float32 operation it meets)."""
        v = float(v)
        return f"{self.np}({v!r})" if self.suffix == "f32" else repr(v)


F32 = _D("f32", "np.float32", "12582912.0")
F64 = _D("f64", "np.float64", "6755399441055744.0")


def _horner(d: _D, var: str, coeffs: list[float]) -> str:
    """c0 + var * (c1 + var * (...)) as text."""
    out = d.c(coeffs[-1])
    for co in reversed(coeffs[:-1]):
        out = f"{d.c(co)} + {var} * ({out})"
    return out


def _fact(k: int) -> float:
    out = 1
    for i in range(2, k + 1):
        out *= i
    return 1.0 / out


# expm1 on |r| <= ln2/2 as r + r*r*P(r): Taylor to r**7 (f32) / r**13 (f64); the next term is
# 0.26 ulp (f32) / 0.1 ulp (f64) of the result at the interval's ends.
_EM_DEGREE = {"f32": 7, "f64": 13}
# ln 2 split so that n * hi is exact for the n that occur; lo is the rest.
_LN2 = {"f32": (0.693359375, -2.12194440e-4), "f64": (6.93147180369123816490e-01, 1.90821492927058770002e-10)}
# clamps: below lo exp is 0 (expm1 is -1) after rounding; above hi it overflows
_EXP_LO = {"f32": -104.0, "f64": -746.0}
_EXP_HI = {"f32": 89.0, "f64": 710.0}
_EXPM1_LO = {"f32": -18.0, "f64": -40.0}
_HALF_EXP = {"f32": 64.0, "f64": 512.0}   # 2**this is normal: expm1 scales in two steps above it


def _reduce(d: _D, lo: float, hi: float) -> str:
    """The common start of exp and expm1: t = x clamped, n = round(t / ln2), r = t - n ln2, and
    em = expm1(r). Clamps are selects written so that nan passes through (a comparison with nan
    is False)."""
    h, l = _LN2[d.suffix]
    poly = _horner(d, "r", [_fact(k) for k in range(2, _EM_DEGREE[d.suffix] + 1)])
    return f"""\
    t = {d.c(lo)} if x < {d.c(lo)} else x
    t = {d.c(hi)} if t > {d.c(hi)} else t
    n = (t * {d.c(1.4426950408889634)} + {d.np}({d.magic})) - {d.np}({d.magic})
    r = (t - n * {d.c(h)}) - n * {d.c(l)}
    em = r + r * r * ({poly})
"""


def _exp(d: _D) -> str:
    return f"""\
{DECORATOR}
def _tl_exp_{d.suffix}(x):
    # exp(x) = 2**n exp(r), |r| <= ln2/2; 2**n is applied as two normal factors so that results
    # in the subnormals round once and results past the largest float overflow to inf
{_reduce(d, _EXP_LO[d.suffix], _EXP_HI[d.suffix])}\
    n1 = (n * {d.c(0.5)} + {d.np}({d.magic})) - {d.np}({d.magic})
    y = ({d.c(1.0)} + em) * _tl_pow2(n1) * _tl_pow2(n - n1)
    return x if x != x else y
"""


def _expm1(d: _D) -> str:
    half = _HALF_EXP[d.suffix]
    return f"""\
{DECORATOR}
def _tl_expm1_{d.suffix}(x):
    # expm1(x) = 2**n em + (2**n - 1) with em = expm1(r): exact at n = 0, where it matters;
    # above 2**{int(half)} the -1 is lost anyway and a second factor carries the overflow
{_reduce(d, _EXPM1_LO[d.suffix], _EXP_HI[d.suffix])}\
    m = {d.c(half)} if n > {d.c(half)} else n
    s = _tl_pow2(m)
    y = (em * s + (s - {d.c(1.0)})) * _tl_pow2(n - m)
    y = x if x == {d.c(0.0)} else y  # -0.0 keeps its sign
    return x if x != x else y
"""


# log(1+f) = f - hfsq + s (hfsq + R(s*s)), s = f / (2 + f): fdlibm's e_log.c / musl's logf.c
_LG = {"f32": [0.66666662693, 0.40000972152, 0.28498786688, 0.24279078841],
       "f64": [6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
               2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
               1.479819860511658591e-01]}
# ln 2 = hi + lo with hi's low bits zero (k * hi exact)
_LN2_LOG = {"f32": (6.9313812256e-01, 9.0580006145e-06),
            "f64": (6.93147180369123816490e-01, 1.90821492927058770002e-10)}


def _log_core(d: _D) -> str:
    """From a positive normal u: k (as float) and f with u = 2**k (1 + f), 1 + f in
    [sqrt(1/2), sqrt(2)), then the polynomial; leaves `k`, `f`, `tail` (log(1+f) - f + hfsq) and
    `hfsq` to the caller, which adds k ln2 and its corrections."""
    lg = [d.c(v) for v in _LG[d.suffix]]
    if d.suffix == "f32":
        # exponent and mantissa from the bits, offset so that the cut is at sqrt(1/2)
        bits = """\
    iu = _tl_bits(u) + (0x3f800000 - 0x3f3504f3)
    k = _tl_f32((iu >> 23) | 0x4b000000) - np.float32(8388735.0)
    f = _tl_f32((iu & 0x007fffff) + 0x3f3504f3) - np.float32(1.0)
"""
        r = f"""\
    t1 = w * ({lg[1]} + w * {lg[3]})
    t2 = z * ({lg[0]} + w * {lg[2]})
"""
    else:
        bits = """\
    iu = _tl_bits(u) + 0x0009_5f62_0000_0000
    k = _tl_f64((iu >> 52) | 0x4330_0000_0000_0000) - 4503599627371519.0
    f = _tl_f64((iu & 0x000f_ffff_ffff_ffff) + 0x3fe6_a09e_0000_0000) - 1.0
"""
        r = f"""\
    t1 = w * ({lg[1]} + w * ({lg[3]} + w * {lg[5]}))
    t2 = z * ({lg[0]} + w * ({lg[2]} + w * ({lg[4]} + w * {lg[6]})))
"""
    return bits + f"""\
    s = f / ({d.c(2.0)} + f)
    z = s * s
    w = z * z
{r}\
    hfsq = {d.c(0.5)} * f * f
    tail = s * (hfsq + (t1 + t2))
"""


_TINY = {"f32": ("np.float32(1.17549435e-38)", "np.float32(33554432.0)", "np.float32(25.0)"),
         "f64": ("2.2250738585072014e-308", "1.8014398509481984e16", "54.0")}


def _log(d: _D) -> str:
    hi, lo = _LN2_LOG[d.suffix]
    tiny, scale, shift = _TINY[d.suffix]
    return f"""\
{DECORATOR}
def _tl_log_{d.suffix}(x):
    # x = 2**k (1 + f); subnormals are scaled into the normals first
    sub = x < {tiny}
    u = x * {scale} if sub else x
{_log_core(d)}\
    k = k - {shift} if sub else k
    y = (k * {d.c(hi)} + ((tail + k * {d.c(lo)}) - hfsq + f))
    y = -{d.np}(np.inf) if x == {d.c(0.0)} else y
    y = {d.np}(np.nan) if x < {d.c(0.0)} else y
    return x if not (x < {d.np}(np.inf)) else y
"""


def _log1p(d: _D) -> str:
    hi, lo = _LN2_LOG[d.suffix]
    big = "25.0" if d.suffix == "f32" else "54.0"
    return f"""\
{DECORATOR}
def _tl_log1p_{d.suffix}(x):
    # log(u) for u = 1 + x rounded, plus c = log(1 + x) - log(u) to first order (musl's log1p
    # without its branches): for tiny x, u = 1 and the result is c = x
    u = {d.c(1.0)} + x
{_log_core(d)}\
    c = ({d.c(1.0)} - (u - x)) if k >= {d.c(2.0)} else (x - (u - {d.c(1.0)}))
    c = c / u if k < {d.c(big)} else {d.c(0.0)}
    y = (k * {d.c(hi)} + ((tail + (k * {d.c(lo)} + c)) - hfsq + f))
    y = x if x == {d.c(0.0)} else y  # -0.0 keeps its sign
    y = -{d.np}(np.inf) if x == {d.c(-1.0)} else y
    y = {d.np}(np.nan) if x < {d.c(-1.0)} else y
    return x if not (x < {d.np}(np.inf)) else y
"""


# Eigen's / XLA's float tanh: odd polynomial over even polynomial on x clamped to +-7.9988 (where
# it reaches 1 in float32; Eigen's older +-7.9053 gives tanh(inf) = 1 - 2.4e-7), tanh(x) = x below 4e-4
_TANH_P = [4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
           -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16]
_TANH_Q = [4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06]


def _tanh(d: _D) -> str:
    if d.suffix == "f32":
        return f"""\
{DECORATOR}
def _tl_tanh_f32(x):
    # a rational function (Eigen's float tanh): 4.5 ulp at most, twice the speed of the
    # expm1 form below (which float64 uses)
    t = {d.c(7.99881172180175781)} if x > {d.c(7.99881172180175781)} else x
    t = {d.c(-7.99881172180175781)} if t < {d.c(-7.99881172180175781)} else t
    z = t * t
    p = t * ({_horner(d, "z", _TANH_P)})
    q = {_horner(d, "z", _TANH_Q)}
    return x if abs(x) < {d.c(0.0004)} else p / q
"""
    return f"""\
{DECORATOR}
def _tl_tanh_{d.suffix}(x):
    # tanh|x| = -e / (2 + e) with e = expm1(-2|x|) in [-1, 0]: no cancellation, 1 at the ends
    a = -x if x < {d.c(0.0)} else x
    e = _tl_expm1_{d.suffix}({d.c(-2.0)} * a)
    y = abs(e / ({d.c(2.0)} + e))
    return -y if x < {d.c(0.0)} else (x if x == {d.c(0.0)} else y)
"""


def _sigmoid(d: _D) -> str:
    return f"""\
{DECORATOR}
def _tl_sigmoid_{d.suffix}(x):
    # e = exp(-|x|) never overflows; for x < 0 the result e / (1 + e) keeps the small values
    # (down to the subnormals) that 1 / (1 + exp(-x)) would round to 0. |x| as np.abs, which a
    # kernel's own abs is too: LLVM then computes exp(-|x|) once for both (bce_with_logits' loss
    # and gradient, W3: 1.7 -> 1.4 ms for 1024 x 256 f32 on one thread)
    a = np.abs(x)
    e = _tl_exp_{d.suffix}(-a)
    s = {d.c(1.0)} / ({d.c(1.0)} + e)
    return e * s if x < {d.c(0.0)} else s
"""


def _softplus(d: _D) -> str:
    return f"""\
{DECORATOR}
def _tl_softplus_{d.suffix}(x):
    # max(x, 0) + log1p(exp(-|x|)) (|x| as np.abs: shared with a sigmoid of x, as above)
    a = np.abs(x)
    m = x if x > {d.c(0.0)} else {d.c(0.0)}
    return (m + _tl_log1p_{d.suffix}(_tl_exp_{d.suffix}(-a))) if x == x else x
"""


def _make() -> dict[tuple[str, str], Form]:
    forms: dict[tuple[str, str], Form] = {}
    base = ("_tl_bits", "_tl_f32", "_tl_f64", "_tl_pow2")
    for d, dtype in ((F32, "float32"), (F64, "float64")):
        sfx = d.suffix
        for write, deps in ((_exp, base), (_expm1, base), (_log, base), (_log1p, base),
                            (_tanh, (f"_tl_expm1_{sfx}",) if sfx == "f64" else ()), (_sigmoid, (f"_tl_exp_{sfx}",)),
                            (_softplus, (f"_tl_exp_{sfx}", f"_tl_log1p_{sfx}"))):
            fname = write.__name__[1:]
            forms[(fname, dtype)] = Form(f"_tl_{fname}_{sfx}", write(d), deps)
    return forms


FORMS: dict[tuple[str, str], Form] = _make()
_BASE = {name: Form(name, "", ()) for name in ("_tl_bits", "_tl_f32", "_tl_f64", "_tl_pow2")}

# A float sum's or product's running step, acc = ADD(acc, v): a function of its own with fastmath
# reassoc, so LLVM keeps several partial sums in vector lanes (a strict loop-carried fadd does
# not vectorise: W2's value-and-gradient loop, 10^7 f32 on one thread, 19.9 -> 11.8 ms). It is
# not inlined by numba (which would compile it under the kernel's flags) but by LLVM, where the
# flag stays on that one instruction: nothing else in the kernel (the forms above, whose
# argument reductions rely on the order of operations) is reassociated. The order of the lanes is
# fixed by the compiled code, so a result does not depend on the thread count.
ACCUMULATE = {
    "+": Form("_tl_add", '@numba.njit(fastmath={"reassoc", "contract"}, error_model="numpy")\n'
                         'def _tl_add(a, b):\n    return a + b\n', ()),
    "*": Form("_tl_mul", '@numba.njit(fastmath={"reassoc", "contract"}, error_model="numpy")\n'
                         'def _tl_mul(a, b):\n    return a * b\n', ()),
}


# ---- the decisions, with the measurements behind them (benchmarks/ulp_report.py) ----------------
# use: form = the vectorisable form in the kernel; libm = np.<fname> in the kernel; ufunc = leave
# the op to NumPy outside the kernel. Figures (python -m tapeless.compiler.tools.ulp_report, two
# runs on a shared 2-core AVX-512 machine, numba 0.68, NumPy 2.4): ms for 2M float32 / 1M
# float64, one-thread loops (form, libm) and the NumPy ufunc (sigmoid: negative, exp, +1,
# reciprocal; softplus: logaddexp(x, 0)); max / mean ulp over every 97th float32 pattern (vs
# float64) and 4M strided float64 patterns plus dense ranges (vs longdouble).
DECISIONS = """
fname     dtype    use   max_ulp  mean_ulp  form_ms    libm_ms      ufunc_ms
exp       float32  form  1.03     0.04      0.98-1.13  4.2-6.9      1.02-1.17
exp       float64  form  0.98     0.04      1.23-1.83  4.5-9.9      0.75-1.46
expm1     float32  form  1.63     0.03      1.42-1.46  20.2-24.3    1.31-1.50
expm1     float64  form  1.76     0.04      1.73-2.18  10.8-15.8    1.88-1.96
log       float32  form  0.79     0.12      1.59-1.76  5.5-5.6      0.94-1.22
log       float64  form  0.77     0.12      1.13-1.84  3.4-4.6      0.88-1.33
log1p     float32  form  0.82     0.09      2.78-3.14  19.9-20.7    1.58-1.59
log1p     float64  form  0.77     0.08      1.30-2.11  9.3-16.0     1.29-1.77
tanh      float32  form  4.52     0.07      1.03-1.08  26.1-26.3    1.26-1.34
tanh      float64  form  2.48     0.06      2.64-3.16  13.0-14.2    1.89-1.90
sigmoid   float32  form  2.62     0.05      1.42-3.02  6.0-11.2     2.46-8.12
sigmoid   float64  form  2.50     0.06      1.50-2.11  4.5-4.9      2.02-2.11
softplus  float32  form  1.57     0.05      5.57-5.80  22.4-34.0    28.1-42.7
softplus  float64  form  1.64     0.13      6.40-12.1  11.5-23.0    16.5-38.9
"""
# Why "form" everywhere: the form is 3-20x faster than numba's libm in every row, and at most
# 2x slower than NumPy's SIMD ufunc on one thread (sigmoid and softplus, made of several ufuncs
# in NumPy, are 1.5-7x faster). A ufunc outside the kernel would split the fused chain and cost
# a temporary's write and read, more than that factor, and the kernel's prange has the cores.
# "ufunc" would be right for a form slower than about 3x the ufunc on one thread: none is.



def _parse(table: str) -> dict[tuple[str, str], str]:
    """(fname, dtype) -> use, from the table's text (a text table: the names are scalar-facet
    functions, which the one-table rule's check would read as op names if spelled as strings)."""
    rows = [line.split() for line in table.strip().splitlines()[1:]]
    return {(r[0], r[1]): r[2] for r in rows}


USE: dict[tuple[str, str], str] = _parse(DECISIONS)
# the whole primitives with forms of their own (not scalar-facet functions): the numba backend
# keeps them unexpanded (passes/expand.py) so a kernel calls the form
WHOLE = frozenset(f for f, _ in FORMS) - frozenset(SCALAR_FUNCTIONS)


def call(fname: str, dtype: str, args) -> str | None:
    """The kernel's text for fname(args) at dtype, or None: the op stays a NumPy ufunc outside
    the kernel (USE says "ufunc") or the table does not know it."""
    use = USE.get((fname, dtype))
    if use == "form":
        return f"{FORMS[(fname, dtype)].name}({', '.join(args)})"
    if use == "libm":
        return f"np.{fname}({', '.join(args)})"
    return None


def source(names) -> str:
    """The definitions of the named forms (Form.name) and of all they use, each once, callees
    first; the intrinsics come as one block."""
    by_name = {f.name: f for f in list(FORMS.values()) + list(ACCUMULATE.values())}
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        form = by_name.get(name) or _BASE[name]
        for dep in form.uses:
            visit(dep)
        order.append(name)

    for n in names:
        visit(n)
    parts = ([_INTRINSICS] if any(n in _BASE for n in order) else []) + \
            [by_name[n].source for n in order if n not in _BASE]
    return "\n\n".join(parts)
