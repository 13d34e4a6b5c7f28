"""Small networks for the pool, thread and embedding tests: every recurrent kind and cell path.

Sizes are deliberately odd (inputs not a multiple of 4, hidden sizes not a multiple of the SIMD
width) so that every remainder loop of the batched products runs.
"""

from __future__ import annotations

import numpy as np

import streamlstm as sl
from streamlstm.network import GRU, LSTM, RNN, Activation, Dense, Network


def _w(rng, *shape, fan_in):
    return rng.normal(size=shape) / np.sqrt(fan_in)


def lstm_stack(seed: int = 0) -> Network:
    """Two default LSTMs + Dense: the fused fast-activation cell path."""
    rng = np.random.default_rng(seed)
    return Network([
        LSTM(W=_w(rng, 1, 28, 5, fan_in=5), R=_w(rng, 1, 28, 7, fan_in=7),
             Wb=rng.normal(size=(1, 28)) * 0.3, Rb=rng.normal(size=(1, 28)) * 0.3),
        LSTM(W=_w(rng, 1, 20, 7, fan_in=7), R=_w(rng, 1, 20, 5, fan_in=5), Wb=rng.normal(size=(1, 20)) * 0.3),
        Dense(W=_w(rng, 3, 5, fan_in=5), b=rng.normal(size=3) * 0.3),
    ], name="lstm_stack")


def lstm_extras(seed: int = 1) -> Network:
    """LSTM with peepholes, clip, input_forget, projection and learned initial states."""
    rng = np.random.default_rng(seed)
    H, Hr, I = 9, 4, 6
    return Network([
        LSTM(W=_w(rng, 1, 4 * H, I, fan_in=I), R=_w(rng, 1, 4 * H, Hr, fan_in=Hr),
             Wb=rng.normal(size=(1, 4 * H)) * 0.3, P=rng.normal(size=(1, 3 * H)) * 0.3,
             proj=_w(rng, 1, Hr, H, fan_in=H), clip=2.5, input_forget=True,
             initial_h=rng.normal(size=(1, Hr)) * 0.5, initial_c=rng.normal(size=(1, H)) * 0.5),
        LSTM(W=_w(rng, 1, 24, Hr, fan_in=Hr), R=_w(rng, 1, 24, 6, fan_in=6),
             activations=["HardSigmoid", "Softsign", "Tanh"]),
        Dense(W=_w(rng, 2, 6, fan_in=6), activation="Tanh"),
    ], name="lstm_extras")


def gru_rnn(seed: int = 2) -> Network:
    """GRU (linear_before_reset on and off), RNN, Dense + Softmax."""
    rng = np.random.default_rng(seed)
    return Network([
        GRU(W=_w(rng, 1, 18, 5, fan_in=5), R=_w(rng, 1, 18, 6, fan_in=6), Wb=rng.normal(size=(1, 18)) * 0.3,
            Rb=rng.normal(size=(1, 18)) * 0.3, linear_before_reset=True, initial_h=rng.normal(size=(1, 6)) * 0.5),
        GRU(W=_w(rng, 1, 15, 6, fan_in=6), R=_w(rng, 1, 15, 5, fan_in=5), Rb=rng.normal(size=(1, 15)) * 0.3),
        RNN(W=_w(rng, 1, 7, 5, fan_in=5), R=_w(rng, 1, 7, 7, fan_in=7), Wb=rng.normal(size=(1, 7)) * 0.3,
            activations=["Tanh"], clip=3.0),
        Dense(W=_w(rng, 4, 7, fan_in=7), b=rng.normal(size=4) * 0.3),
        Activation("Softmax"),
    ], name="gru_rnn")


def bidirectional(seed: int = 3) -> Network:
    rng = np.random.default_rng(seed)
    return Network([LSTM(W=_w(rng, 2, 12, 4, fan_in=4), R=_w(rng, 2, 12, 3, fan_in=3),
                         direction="bidirectional")], name="bidi")


NETS = {"lstm_stack": lstm_stack, "lstm_extras": lstm_extras, "gru_rnn": gru_rnn}


def models() -> dict[str, sl.Model]:
    """Every net in float32, lstm_stack in float64, and compressed (int8, bf16) weights."""
    out = {name: sl.Model(f()) for name, f in NETS.items()}
    out["lstm_stack_f64"] = sl.Model(lstm_stack(), dtype="float64")
    out["lstm_extras_int8"] = sl.Model(lstm_extras(), weights="int8")
    out["gru_rnn_bf16"] = sl.Model(gru_rnn(), weights="bf16")
    return out


def frames(rng: np.random.Generator, model: sl.Model, n: int) -> np.ndarray:
    return rng.normal(size=(n, model.input_size)).astype(model.dtype)


def wide_stack(seed: int = 5, I: int = 64, H: int = 256, O: int = 40) -> Network:
    """LSTM + GRU + RNN + Dense whose products all reach the helper thread's SPLIT_MIN."""
    rng = np.random.default_rng(seed)
    return Network([
        LSTM(W=_w(rng, 1, 4 * H, I, fan_in=I), R=_w(rng, 1, 4 * H, H, fan_in=H),
             Wb=_w(rng, 1, 4 * H, fan_in=H), Rb=_w(rng, 1, 4 * H, fan_in=H)),
        GRU(W=_w(rng, 1, 3 * H, H, fan_in=H), R=_w(rng, 1, 3 * H, H, fan_in=H),
            Wb=_w(rng, 1, 3 * H, fan_in=H), Rb=_w(rng, 1, 3 * H, fan_in=H)),
        RNN(W=_w(rng, 1, H, H, fan_in=H), R=_w(rng, 1, H, H, fan_in=H)),
        Dense(W=_w(rng, O, H, fan_in=H), b=_w(rng, O, fan_in=H)),
    ], name="wide_stack")
