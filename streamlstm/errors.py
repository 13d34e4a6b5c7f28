"""Exceptions raised by streamlstm."""


class StreamLSTMError(Exception):
    """Base class of every error streamlstm raises on purpose."""


class NetworkError(StreamLSTMError, ValueError):
    """A Network is malformed: the message names the layer and the field at fault."""


class ConversionError(StreamLSTMError, ValueError):
    """A model file or object cannot be imported (unsupported op/layer, bad file, unsafe content)."""
