"""The load budget: how many bytes of arrays a loader may build from one model file.

Every reader (pickle, zip members, safetensors, HDF5, ONNX tensors and constant folding) asks
the budget before it allocates anything whose size comes from the file. The budget of a file is
``FLOOR_BYTES + FACTOR * file_bytes``: the constant covers small models whose weights are built
rather than stored (zeros, folded constants), the factor covers legitimate widening (float16 to
float64 is 4x) and transposed copies. A file that asks for more is refused with a
``ConversionError`` before the allocation, so a few KB can never become gigabytes.

``sl.load`` opens one budget per load (``load_budget``); a reader called on its own opens its own
(``budget_for``). Inside a load, every reader draws from the same budget.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from pathlib import Path
from typing import Iterator

from .errors import ConversionError

FLOOR_BYTES = 64 << 20          # built (not stored) bytes any file may ask for
FACTOR = 8                      # bytes built per byte stored

JSON_BYTES_PER_CHAR = 24        # what json.loads may build per character (empty lists are the worst)

_ACTIVE: contextvars.ContextVar["LoadBudget | None"] = contextvars.ContextVar("streamlstm_load_budget",
                                                                               default=None)


class LoadBudget:
    """A running total of the bytes one load has built, refused beyond ``limit``."""

    def __init__(self, where: str, file_bytes: int):
        self.where = where
        self.file_bytes = int(file_bytes)
        self.limit = FLOOR_BYTES + FACTOR * self.file_bytes
        self.used = 0

    @property
    def left(self) -> int:
        return self.limit - self.used

    def check(self, nbytes: int, what: str, held: int = 0) -> None:
        """Raise ConversionError if ``nbytes`` more (on top of ``held`` not yet taken) do not fit."""
        if nbytes < 0 or self.used + held + nbytes > self.limit:
            raise ConversionError(
                f"{self.where}: {what} needs {nbytes} bytes, beyond the load budget "
                f"({self.limit} bytes = {FLOOR_BYTES >> 20} MiB + {FACTOR} x the file's "
                f"{self.file_bytes} bytes; {self.used + held} already used)")

    def add_stored(self, nbytes: int) -> None:
        """Count ``nbytes`` more stored bytes (external data read from a file beside the model)."""
        self.file_bytes += int(nbytes)
        self.limit += FACTOR * int(nbytes)

    def take(self, nbytes: int, what: str) -> None:
        """Reserve ``nbytes`` for ``what``, or raise ConversionError naming it and the budget."""
        self.check(nbytes, what)
        self.used += int(nbytes)


def source_bytes(path: str | os.PathLike) -> int:
    """Stored bytes of a model: a regular file's size, or the regular files of a model directory."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.iterdir() if f.is_file() and not f.is_symlink())
    return p.stat().st_size


def charge_json(text_length: int, what: str) -> None:
    """Charge parsing ``text_length`` characters of JSON to the active load's budget, if any."""
    current = _ACTIVE.get()
    if current is not None:
        current.take(JSON_BYTES_PER_CHAR * text_length, what)


def active() -> LoadBudget | None:
    """The budget of the load in progress in this thread, if any."""
    return _ACTIVE.get()


def budget_for(where: str, file_bytes: int) -> LoadBudget:
    """The active load's budget, else a fresh one for ``file_bytes`` (a reader called directly)."""
    current = _ACTIVE.get()
    return current if current is not None else LoadBudget(where, file_bytes)


@contextlib.contextmanager
def load_budget(where: str, file_bytes: int) -> Iterator[LoadBudget]:
    """Make one budget the active one for the duration of a load (nested loads keep the outer one)."""
    current = _ACTIVE.get()
    if current is not None:
        yield current
        return
    budget = LoadBudget(where, file_bytes)
    token = _ACTIVE.set(budget)
    try:
        yield budget
    finally:
        _ACTIVE.reset(token)
