"""The standard benchmark zoo: networks with random weights (fixed seeds, 1/sqrt(fan_in)).

| name | shape                          | stands for                   |
|------|--------------------------------|------------------------------|
| tiny | I16 H32 x1 -> Dense 4          | control loops, small sensors |
| kws  | I40 H64 x2 -> Dense 12         | keyword spotting             |
| vad  | I64 H128 x1 -> Dense 1 + Sigmoid | voice activity detection   |
| enh  | I257 H256 x2 -> Dense 257      | speech enhancement (mask)    |
| big  | I256 H1024 x1 -> Dense 256     | large memory-bound model     |
| crnn | I40 causal conv 64 k3 x2 (Relu) -> GRU 128 -> Dense 12 | streaming CRNN (KWS, sensors) |
| tagger | token ids: Embedding 5000x64 -> LSTM 128 -> Dense 20 + Softmax | streaming token tagger |

The first five are LSTM stacks described by ``SPECS``; the whole models with a front end
(``crnn``, ``tagger``) are built by ``WHOLE``.
"""

from __future__ import annotations

import numpy as np

from .. import GRU, LSTM, Activation, Dense, Embedding, Network, TimeConv1d

# name: (input, hidden, layers, dense outputs, head activation)
SPECS = {
    "tiny": (16, 32, 1, 4, None),
    "kws": (40, 64, 2, 12, None),
    "vad": (64, 128, 1, 1, "Sigmoid"),
    "enh": (257, 256, 2, 257, None),
    "big": (256, 1024, 1, 256, None),
}


def _uniform(rng: np.random.Generator, shape: tuple, fan_in: int) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, size=shape) / np.sqrt(fan_in)


def _crnn(rng: np.random.Generator) -> list:
    I, C, k, H, O = 40, 64, 3, 128, 12
    layers, width = [], I
    for _ in range(2):
        layers.append(TimeConv1d(_uniform(rng, (C, width, k), width * k), _uniform(rng, (C,), width * k),
                                 activation="Relu"))
        width = C
    layers.append(GRU(W=_uniform(rng, (1, 3 * H, C), H), R=_uniform(rng, (1, 3 * H, H), H),
                      Wb=_uniform(rng, (1, 3 * H), H), Rb=_uniform(rng, (1, 3 * H), H), linear_before_reset=True))
    layers.append(Dense(W=_uniform(rng, (O, H), H), b=_uniform(rng, (O,), H)))
    return layers


def _tagger(rng: np.random.Generator) -> list:
    V, D, H, O = 5000, 64, 128, 20
    return [Embedding(rng.normal(size=(V, D)) * 0.5),
            LSTM(W=_uniform(rng, (1, 4 * H, D), D), R=_uniform(rng, (1, 4 * H, H), H),
                 Wb=_uniform(rng, (1, 4 * H), H), Rb=_uniform(rng, (1, 4 * H), H)),
            Dense(W=_uniform(rng, (O, H), H), b=_uniform(rng, (O,), H), activation="Softmax")]


# name: builder of the layers of a whole model (front end included)
WHOLE = {"crnn": _crnn, "tagger": _tagger}
NAMES = tuple(SPECS) + tuple(WHOLE)


def zoo_network(name: str, seed: int = 0) -> Network:
    """The zoo network ``name`` (one of NAMES), deterministic for a given seed."""
    if name not in NAMES:
        raise KeyError(f"unknown zoo model {name!r}; known: {NAMES}")
    rng = np.random.default_rng(seed + sum(map(ord, name)))
    if name in WHOLE:
        return Network(WHOLE[name](rng), name=name)
    I, H, nlayers, O, head = SPECS[name]
    layers, width = [], I
    for _ in range(nlayers):
        layers.append(LSTM(W=_uniform(rng, (1, 4 * H, width), width), R=_uniform(rng, (1, 4 * H, H), H),
                           Wb=_uniform(rng, (1, 4 * H), H), Rb=_uniform(rng, (1, 4 * H), H)))
        width = H
    layers.append(Dense(W=_uniform(rng, (O, H), H), b=_uniform(rng, (O,), H)))
    if head:
        layers.append(Activation(head))
    return Network(layers, name=name)
