"""``load``: hand a path or an in-memory model to its format's importer and build a Model.

The format -> importer table and the sniffing live in ``streamlstm.converters.registry``.
"""

from __future__ import annotations

from typing import Any

from .converters.registry import FORMATS, format_of, import_source
from .model import Model
from .network import Network

__all__ = ["load", "import_network", "format_of", "FORMATS"]


def import_network(source: Any, *, format: str | None = None, **options) -> Network:
    """Convert ``source`` (path or in-memory model) to a Network without planning it."""
    if format in (None, "network") and isinstance(source, Network):
        return source
    return import_source(source, format, **options)


def load(source: Any, *, format: str | None = None, dtype: str = "float32",
         fast_activations: bool | None = None, weights: str = "float", **options) -> Model:
    """Load a model from a path (.onnx .pt .pth .ckpt .bin .safetensors .keras .h5 .npz), an
    onnx.ModelProto, a torch.nn.Module or state_dict, a keras.Model, or a Network.

    ``format`` (one of ``FORMATS``) overrides what the extension or type says. ``options`` go
    to the converter (ONNX: inputs=, outputs=; PyTorch: layers=, key=, prefix=; Keras: layers=,
    config=). ``fast_activations`` (default: on for float32) selects the vectorised
    tanh/sigmoid approximations; False uses libm. ``weights`` "bf16" or "int8" stores the
    weight matrices compressed (opt-in, float32 only; faster on models whose weights do not
    fit in cache, at a small accuracy cost).
    """
    return Model(import_network(source, format=format, **options), dtype=dtype,
                 fast_activations=fast_activations, weights=weights)
