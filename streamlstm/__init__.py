"""streamlstm: one-frame-at-a-time LSTM/GRU/RNN inference on the CPU, compiled with Numba.

    import streamlstm as sl
    model = sl.load("model.onnx")
    s = model.session()
    y = s.step(frame)
"""

__version__ = "0.1.0"

from .errors import ConversionError, NetworkError, StreamLSTMError
from .network import (
    GRU, LSTM, RNN, Act, Activation, Binary, Concat, Conv1d, Dense, Elementwise, Embedding, LayerNorm, Network,
    Rearrange, Reduce, TimeConv1d, act,
)
from .model import Kernel, Model, Session
from .pool import SessionPool
from .loading import load
from .aot import compile  # sl.compile(); kept out of __all__ so that "import *" leaves the builtin alone

__all__ = [
    "load", "Model", "Session", "SessionPool", "Kernel", "Network", "LSTM", "GRU", "RNN", "Dense", "Activation", "Act", "act",
    "Embedding", "Conv1d", "TimeConv1d", "LayerNorm", "Rearrange", "Reduce", "Elementwise", "Binary", "Concat",
    "ConversionError", "NetworkError", "StreamLSTMError", "__version__",
]
