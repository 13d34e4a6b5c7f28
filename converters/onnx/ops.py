"""The ONNX op -> handler tables of the importer's data-path walk. The tables ARE the list of
supported ops: adding an op (or a layer kind an op maps to) is one registered handler.

``STREAM_OPS[op](walker, node, i, ins, attrs, where)`` handles a node that reads a tensor computed
from the data input and returns one value per node output (a ``Stream``, a ``ShapeVal`` or
None). ``SHAPE_OPS[op](walker, node, ins, attrs, where)`` handles a node that reads only stream
shapes (``ShapeVal``) and constants; an op missing there leaves its outputs unknown.
"""

from __future__ import annotations

from typing import Any, Callable

StreamHandler = Callable[..., list]
ShapeHandler = Callable[..., list]

STREAM_OPS: dict[str, StreamHandler] = {}
SHAPE_OPS: dict[str, ShapeHandler] = {}


def _register(table: dict, ops: tuple[str, ...]) -> Callable[[Any], Any]:
    def add(handler):
        for op in ops:
            if op in table:
                raise ValueError(f"ONNX op {op!r} already has a handler ({table[op].__qualname__})")
            table[op] = handler
        return handler
    return add


def stream_op(*ops: str) -> Callable[[Any], Any]:
    """Register the decorated function as the data-path handler of ``ops``."""
    return _register(STREAM_OPS, ops)


def shape_op(*ops: str) -> Callable[[Any], Any]:
    """Register the decorated function as the stream-shape handler of ``ops``."""
    return _register(SHAPE_OPS, ops)


def supported_ops() -> list[str]:
    """Every op the importer accepts on the data path, sorted."""
    return sorted(STREAM_OPS)
