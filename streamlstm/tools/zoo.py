"""The standard benchmark zoo: five networks with random weights (fixed seeds, 1/sqrt(fan_in)).

| name | shape                          | stands for                   |
|------|--------------------------------|------------------------------|
| tiny | I16 H32 x1 -> Dense 4          | control loops, small sensors |
| kws  | I40 H64 x2 -> Dense 12         | keyword spotting             |
| vad  | I64 H128 x1 -> Dense 1 + Sigmoid | voice activity detection   |
| enh  | I257 H256 x2 -> Dense 257      | speech enhancement (mask)    |
| big  | I256 H1024 x1 -> Dense 256     | large memory-bound model     |
"""

from __future__ import annotations

import numpy as np

from .. import LSTM, Activation, Dense, Network

# name: (input, hidden, layers, dense outputs, head activation)
SPECS = {
    "tiny": (16, 32, 1, 4, None),
    "kws": (40, 64, 2, 12, None),
    "vad": (64, 128, 1, 1, "Sigmoid"),
    "enh": (257, 256, 2, 257, None),
    "big": (256, 1024, 1, 256, None),
}
NAMES = tuple(SPECS)


def _uniform(rng: np.random.Generator, shape: tuple, fan_in: int) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, size=shape) / np.sqrt(fan_in)


def zoo_network(name: str, seed: int = 0) -> Network:
    """The zoo network ``name`` (one of NAMES), deterministic for a given seed."""
    if name not in SPECS:
        raise KeyError(f"unknown zoo model {name!r}; known: {NAMES}")
    I, H, nlayers, O, head = SPECS[name]
    rng = np.random.default_rng(seed + sum(map(ord, name)))
    layers, width = [], I
    for _ in range(nlayers):
        layers.append(LSTM(W=_uniform(rng, (1, 4 * H, width), width), R=_uniform(rng, (1, 4 * H, H), H),
                           Wb=_uniform(rng, (1, 4 * H), H), Rb=_uniform(rng, (1, 4 * H), H)))
        width = H
    layers.append(Dense(W=_uniform(rng, (O, H), H), b=_uniform(rng, (O,), H)))
    if head:
        layers.append(Activation(head))
    return Network(layers, name=name)
