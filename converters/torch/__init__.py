"""PyTorch import and export: the public entry points of streamlstm.converters.torch.

``import_torch`` reads an nn.Module, a state dict or a checkpoint file into a Network (see
``importer``; files are read without torch by ``pickle`` and ``..safetensors``). ``to_torch``
(in ``export``, which needs torch) rebuilds a Network as torch modules.
"""

from __future__ import annotations

from .importer import FILE_SUFFIXES, import_torch

__all__ = ["import_torch", "FILE_SUFFIXES"]
