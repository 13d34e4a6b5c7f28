"""Keras import: the public entry point of streamlstm.converters.keras.

``import_keras`` reads a ``.keras``/``.h5`` file (with h5py and json, see ``files``; Keras itself
is never imported for files) or an in-memory ``keras.Model`` into a Network; ``layers`` maps each
Keras layer to IR layers.
"""

from __future__ import annotations

from .importer import import_keras

__all__ = ["import_keras"]
