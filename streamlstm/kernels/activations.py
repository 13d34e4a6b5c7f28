"""Activation functions over vectors, in place, selected by an integer code.

Every function has an exact form (libm); tanh and sigmoid (and ScaledTanh) also have a fast
rational form that LLVM vectorises, with max abs error < 1e-6 in float32. The Plan picks the
fast codes for float32 unless exact activations are requested.
"""

import math

import numpy as np
from numba import njit

from .config import JIT

IDENTITY = 0
RELU = 1
TANH = 2
SIGMOID = 3
AFFINE = 4
LEAKY_RELU = 5
THRESHOLDED_RELU = 6
SCALED_TANH = 7
HARD_SIGMOID = 8
ELU = 9
SOFTSIGN = 10
SOFTPLUS = 11
SOFTMAX = 12
TANH_FAST = 13
SIGMOID_FAST = 14
SCALED_TANH_FAST = 15

CODES = {
    "Identity": IDENTITY, "Relu": RELU, "Tanh": TANH, "Sigmoid": SIGMOID, "Affine": AFFINE,
    "LeakyRelu": LEAKY_RELU, "ThresholdedRelu": THRESHOLDED_RELU, "ScaledTanh": SCALED_TANH,
    "HardSigmoid": HARD_SIGMOID, "Elu": ELU, "Softsign": SOFTSIGN, "Softplus": SOFTPLUS,
    "Softmax": SOFTMAX,
}
FAST_VARIANT = {TANH: TANH_FAST, SIGMOID: SIGMOID_FAST, SCALED_TANH: SCALED_TANH_FAST}

# Rational minimax approximation of tanh on [-c, c] (the form Eigen uses for float):
# tanh(x) ~ x * P(x^2) / Q(x^2), saturating to +-1 beyond c.
# float32 globals: Numba freezes them as float32 constants, so float32 math stays float32-wide.
_CLAMP = np.float32(7.90531110763549805)
_A1 = np.float32(4.89352455891786e-03)
_A3 = np.float32(6.37261928875436e-04)
_A5 = np.float32(1.48572235717979e-05)
_A7 = np.float32(5.12229709037114e-08)
_A9 = np.float32(-8.60467152213735e-11)
_A11 = np.float32(2.00018790482477e-13)
_A13 = np.float32(-2.76076847742355e-16)
_B0 = np.float32(4.89352518554385e-03)
_B2 = np.float32(2.26843463243900e-03)
_B4 = np.float32(1.18534705686654e-04)
_B6 = np.float32(1.19825839466702e-06)
_HALF = np.float32(0.5)


@njit(**JIT)
def tanh_fast(x):
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    p = x * p
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return p / q


@njit(**JIT)
def sigmoid_fast(x):
    return _HALF + _HALF * tanh_fast(_HALF * x)


@njit(**JIT)
def sigmoid(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@njit(**JIT)
def softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@njit(**JIT)
def clip_(v, lim):
    """v = min(max(v, -lim), lim) in place (ONNX's ``clip`` of gate pre-activations)."""
    for j in range(v.shape[0]):
        v[j] = min(max(v[j], -lim), lim)


@njit(**JIT)
def apply(code, alpha, beta, v):
    """Apply activation ``code`` to the 1-D array ``v`` in place."""
    n = v.shape[0]
    if code == IDENTITY:
        return
    elif code == TANH_FAST:
        for j in range(n):
            v[j] = tanh_fast(v[j])
    elif code == SIGMOID_FAST:
        for j in range(n):
            v[j] = sigmoid_fast(v[j])
    elif code == TANH:
        for j in range(n):
            v[j] = math.tanh(v[j])
    elif code == SIGMOID:
        for j in range(n):
            v[j] = sigmoid(v[j])
    elif code == RELU:
        for j in range(n):
            v[j] = max(v[j], 0.0)
    elif code == AFFINE:
        for j in range(n):
            v[j] = alpha * v[j] + beta
    elif code == LEAKY_RELU:
        for j in range(n):
            x = v[j]
            v[j] = x if x >= 0 else alpha * x
    elif code == THRESHOLDED_RELU:
        for j in range(n):
            x = v[j]
            v[j] = x if x > alpha else 0.0
    elif code == SCALED_TANH:
        for j in range(n):
            v[j] = alpha * math.tanh(beta * v[j])
    elif code == SCALED_TANH_FAST:
        for j in range(n):
            v[j] = alpha * tanh_fast(beta * v[j])
    elif code == HARD_SIGMOID:
        for j in range(n):
            v[j] = min(max(alpha * v[j] + beta, 0.0), 1.0)
    elif code == ELU:
        for j in range(n):
            x = v[j]
            v[j] = x if x >= 0 else alpha * (math.exp(x) - 1.0)
    elif code == SOFTSIGN:
        for j in range(n):
            x = v[j]
            v[j] = x / (1.0 + abs(x))
    elif code == SOFTPLUS:
        for j in range(n):
            v[j] = softplus(v[j])
    elif code == SOFTMAX:
        m = v[0]
        for j in range(1, n):
            m = max(m, v[j])
        s = 0.0
        for j in range(n):
            e = math.exp(v[j] - m)
            v[j] = e
            s += e
        inv = 1.0 / s
        for j in range(n):
            v[j] *= inv
