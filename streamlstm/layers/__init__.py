"""Layer units: one module per kind (its frozen IR class, its packing into the Plan), the
shared base (activations, array checks) and the registry of kinds (``LAYER_KINDS``).

Every module of this package is imported here, so a unit registers itself (``@register``)
before any file is loaded, and a new kind's module needs no line in this file. The names
below are the public ones.
"""

import importlib
import pkgutil

from .base import (
    LAYER_ACTIVATIONS, LAYER_KINDS, RNN_ACTIVATIONS, Act, ActLike, Layer, act, as_act, register,
)
from .recurrent import DIRECTIONS, MERGE_MODES, Recurrent
from .lstm import LSTM
from .gru import GRU
from .rnn import RNN
from .dense import Dense
from .activation import Activation
from .embedding import Embedding
from .conv import Conv1d, TimeConv1d
from .norm import LayerNorm
from .frame import Binary, Concat, Elementwise, HoldFirst, Rearrange, Reduce

__all__ = [
    "LAYER_ACTIVATIONS", "LAYER_KINDS", "RNN_ACTIVATIONS", "Act", "ActLike", "Layer", "act", "as_act",
    "register", "DIRECTIONS", "MERGE_MODES", "Recurrent", "LSTM", "GRU", "RNN", "Dense", "Activation",
    "Embedding", "Conv1d", "TimeConv1d", "LayerNorm", "Rearrange", "Reduce", "Elementwise", "Binary", "Concat", "HoldFirst",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
