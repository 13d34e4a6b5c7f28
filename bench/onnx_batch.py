"""The batched one-frame ONNX graph of a network, now in ``streamlstm.tools.onnx_batch`` (the
bench's ``--pool`` table uses it too); re-exported here for the bench scripts."""

from streamlstm.tools.onnx_batch import batch_onnx, state_specs

__all__ = ["batch_onnx", "state_specs"]
