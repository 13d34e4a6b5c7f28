"""streamlstm: one-frame-at-a-time LSTM/GRU/RNN inference on the CPU, compiled with Numba.

    import streamlstm as sl
    model = sl.load("model.onnx")
    s = model.session()
    y = s.step(frame)
"""

__version__ = "0.1.0"

from .errors import ConversionError, NetworkError, StreamLSTMError
from .network import GRU, LSTM, RNN, Act, Activation, Dense, Network, act
from .model import Kernel, Model, Session
from .pool import SessionPool
from .loading import load
from .aot import compile  # sl.compile(); kept out of __all__ so that "import *" leaves the builtin alone

__all__ = [
    "load", "Model", "Session", "SessionPool", "Kernel", "Network", "LSTM", "GRU", "RNN", "Dense", "Activation", "Act", "act",
    "ConversionError", "NetworkError", "StreamLSTMError", "__version__",
]
