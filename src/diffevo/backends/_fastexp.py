"""A vectorisable 2**y for Numba loops (no SVML here: see bench/README.md).

``math.exp`` / ``np.exp`` inside a Numba loop is a libm call, which keeps the loop
scalar. :func:`exp2` is plain arithmetic that LLVM vectorises (AVX-512 / AVX2).
The pair loops work in base 2 -- logits are scaled by log2(e) once per key and the
``1/(2 sigma^2)`` factor once per call -- so the loop needs 2**y only:

    y = n + f,  n integer,   2**y = 2**n * p(f)

``2**n`` is built from its exponent bits (``(n + bias) << mantissa_bits``) and
reinterpreted as a float by a one-instruction bitcast intrinsic (no scratch array,
so a whole pair loop stays one vector loop). ``p`` is a polynomial:

* float32: ``n = floor(y)``, f in [0, 1), a degree-5 near-minimax fit (Lawson
  iteration on Chebyshev nodes): relative error 7.5e-8, 1.6e-7 evaluated in
  float32 -- about 2 ulp.
* float64: ``n = round(y)``, ``f = y - n`` (exact), then Taylor to degree 12 of
  ``exp(f ln 2)``, |f ln 2| <= ln(2)/2: truncation below 2e-16, a few ulp after
  rounding; the float64 golden cases (1e-10 relative) see nothing of it.

Underflow is flushed to exact zero: y is clamped at the smallest exponent code
(-127 / -1023), whose bit pattern is 0, so ``exp2(-inf) == 0`` and everything below
the normal range is 0 rather than a denormal (the reference's float64 exp keeps
denormals down to 5e-324; those are below every eps floor of SPEC section 3 by more
than 280 orders of magnitude). The input must not be NaN or above 127 / 1023:
callers only pass y <= 0 (logits minus a shift), where the result is in [0, 1].
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

#: fastmath flags for the pair loops: reassociation (vector reductions) and
#: contraction (FMA), but NOT 'nnan'/'ninf': logits of zero-fitness members are -inf
#: in exact mode and must stay -inf until fexp turns them into 0.
FASTMATH = {"contract", "reassoc", "nsz", "arcp", "afn"}

#: callers work in base 2: logits are scaled by log2(e) once, outside the pair loop
LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
_LN2 = LN2

# 2^f on [0, 1), degree 5, lowest order first (fitted for relative error, see above)
_P32 = (
    0.9999999255005,
    0.6931530732415,
    0.2401536186484,
    0.0558263180802,
    0.0089893400651,
    0.0018775766938,
)


@intrinsic
def _bits_as_float(typingctx, bits):
    """Reinterpret int32 -> float32 or int64 -> float64 (LLVM bitcast, no conversion)."""
    if bits == types.int32:
        sig, ftype = types.float32(types.int32), ir.FloatType()
    elif bits == types.int64:
        sig, ftype = types.float64(types.int64), ir.DoubleType()
    else:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ftype)

    return sig, codegen


@intrinsic
def _float_as_bits(typingctx, x):
    """Reinterpret float32 -> int32 or float64 -> int64 (LLVM bitcast, no conversion)."""
    if x == types.float32:
        sig, itype = types.int32(types.float32), ir.IntType(32)
    elif x == types.float64:
        sig, itype = types.int64(types.float64), ir.IntType(64)
    else:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], itype)

    return sig, codegen


@njit(inline="always", fastmath=FASTMATH)
def _exp2_32(y):
    y = max(y, np.float32(-127.0))  # n = -127 -> exponent bits 0 -> exactly 0.0
    n = np.floor(y)
    f = y - n
    p = np.float32(_P32[5])
    p = p * f + np.float32(_P32[4])
    p = p * f + np.float32(_P32[3])
    p = p * f + np.float32(_P32[2])
    p = p * f + np.float32(_P32[1])
    p = p * f + np.float32(_P32[0])
    # numba widens int32 arithmetic to int64: narrow back before the bitcast
    bits = np.int32((np.int32(n) + np.int32(127)) << np.int32(23))
    return p * _bits_as_float(bits)


@njit(inline="always", fastmath=FASTMATH)
def _split(y):
    """y -> (n, f): n = round(y) (y clamped so that n = -1023 gives exactly 0.0) and
    f = (y - n) ln 2, |f| <= ln(2) / 2 (y - n is exact)."""
    y = max(y, -1023.0)
    n = np.floor(y + 0.5)
    return n, (y - n) * _LN2


@njit(inline="always", fastmath=FASTMATH)
def _taylor8(p, f):
    """Horner's last eight steps of exp(f) from p, the coefficient accumulated at f^8.
    (Straight-line on purpose: a loop over a coefficient tuple in an inlined function
    trips Numba's IR checks.)"""
    p = p * f + 1.0 / 5040.0
    p = p * f + 1.0 / 720.0
    p = p * f + 1.0 / 120.0
    p = p * f + 1.0 / 24.0
    p = p * f + 1.0 / 6.0
    p = p * f + 0.5
    p = p * f + 1.0
    return p * f + 1.0


@njit(inline="always", fastmath=FASTMATH)
def _scaled(p, n):
    """p * 2**n for an integral float n >= -1023 (-1023: exponent bits 0, exactly 0.0)."""
    return p * _bits_as_float((np.int64(n) + np.int64(1023)) << np.int64(52))


@njit(inline="always", fastmath=FASTMATH)
def _exp2_64(y):
    n, f = _split(y)
    p = 1.0 / 479001600.0  # 1/12!
    p = p * f + 1.0 / 39916800.0
    p = p * f + 1.0 / 3628800.0
    p = p * f + 1.0 / 362880.0
    p = p * f + 1.0 / 40320.0
    return _scaled(_taylor8(p, f), n)


#: relative error bound of :func:`exp2_coarse` (Taylor to degree 8 on |f ln 2| <= ln(2)/2:
#: remainder 0.347^9 / 9! * e^0.347 = 2.8e-10, plus rounding)
EXP2_COARSE_RTOL = 3e-10


@njit(inline="always", fastmath=FASTMATH)
def exp2_coarse(y):
    """2**y for float64 y <= 0, relative error <= EXP2_COARSE_RTOL: four terms fewer than
    :func:`exp2` (the cut-off sums of diffevo.approx need 1e-9, not the golden 1e-10 of the
    exact kernels; their pair loop is bound by this polynomial)."""
    n, f = _split(y)
    return _scaled(_taylor8(1.0 / 40320.0, f), n)


def exp2(y):  # pragma: no cover - replaced by the overload inside jitted code
    """2**y for y <= 0 in a vectorisable form (float32 or float64); Numba only."""
    raise NotImplementedError("exp2 is only callable from Numba-compiled code")


@overload(exp2, inline="always", jit_options={"fastmath": FASTMATH})
def _exp2_overload(y):
    if y == types.float32:
        return lambda y: _exp2_32(y)
    if y == types.float64:
        return lambda y: _exp2_64(y)
    return None


def zero(a):  # pragma: no cover - replaced by the overload inside jitted code
    """A 0 of a's dtype (Numba types ``a.dtype.type(0)`` as float64); Numba only."""
    raise NotImplementedError("zero is only callable from Numba-compiled code")


@overload(zero, inline="always")
def _zero_overload(a):
    if a.dtype == types.float32:
        return lambda a: np.float32(0.0)
    if a.dtype == types.float64:
        return lambda a: np.float64(0.0)
    return None


# Maximum of a float row. LLVM does not vectorise a floating-point max reduction
# unless its select carries 'nnan', which Numba never sets (and -inf logits must
# survive anyway); an integer max reduction vectorises with no flags. IEEE floats
# order like sign-magnitude integers, so flipping the magnitude bits of negative
# values (an involution) makes them order like two's-complement integers.


@njit(inline="always", fastmath=FASTMATH)
def _max32(y, n):
    m = np.int32(-2147483648)
    for j in range(n):
        b = _float_as_bits(y[j])
        m = max(m, np.int32(b ^ ((b >> np.int32(31)) & np.int32(0x7FFFFFFF))))
    return _bits_as_float(np.int32(m ^ ((m >> np.int32(31)) & np.int32(0x7FFFFFFF))))


@njit(inline="always", fastmath=FASTMATH)
def _max64(y, n):
    m = np.int64(-9223372036854775808)
    for j in range(n):
        b = _float_as_bits(y[j])
        m = max(m, b ^ ((b >> np.int64(63)) & np.int64(0x7FFFFFFFFFFFFFFF)))
    return _bits_as_float(m ^ ((m >> np.int64(63)) & np.int64(0x7FFFFFFFFFFFFFFF)))


def row_max(y, n):  # pragma: no cover - replaced by the overload inside jitted code
    """max(y[:n]) (n >= 1, no NaN; -inf allowed) as a vector loop; Numba only."""
    raise NotImplementedError("row_max is only callable from Numba-compiled code")


@overload(row_max, inline="always", jit_options={"fastmath": FASTMATH})
def _row_max_overload(y, n):
    if y.dtype == types.float32:
        return lambda y, n: _max32(y, n)
    if y.dtype == types.float64:
        return lambda y, n: _max64(y, n)
    return None


@njit(fastmath=FASTMATH, cache=True)
def row_max_array(y):
    """``row_max`` of a non-empty 1-D array (for tests). y: (n,) -> scalar."""
    return row_max(y, y.shape[0])


@njit(fastmath=FASTMATH, cache=True)
def exp_array(x):
    """``exp2(x * log2(e))`` over a 1-D array (for tests and measurements). x: (n,) -> (n,)."""
    out = np.empty_like(x)
    log2e = x.dtype.type(LOG2E)
    for i in range(x.shape[0]):
        out[i] = exp2(x[i] * log2e)
    return out
