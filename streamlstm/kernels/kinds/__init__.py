"""The maths of every layer kind, one module each, and ``RowKind``, how a module declares its rows.

A module here names its row kinds (``K_<NAME> = <id>``), its fields from ``FIRST_KIND_FIELD``
on, its Numba functions, and a tuple ``ROW_KINDS`` of ``RowKind`` saying how the row
interpreter calls them. ``kernels/rows.py`` imports every module of this package and writes its
dispatch from their ``ROW_KINDS``, so adding a kind adds no line anywhere else in ``kernels/``.
Modules here import only ``kernels`` helpers and each other, never ``rows``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# What a "rows" kind may ask the interpreter for (see ``rows.py``): the ``KindSet`` ``kinds``
# (for its products: ``split.stored_project`` compiles for the set's weight formats), the
# weights ``w``, its ``row`` of the table, the table's integer data ``ints``, its ``src``/``dst``
# sequences as (T, width) views, the stream state (one stream) or state slab (pool) ``state``
# with ``S`` values per stream, the pool's ``slots`` (None for one stream), the raw input ``X``
# from ``xoff`` and the ``work`` buffer whose sequences are ``span`` values apart, the block's
# row count ``T``, the gather scratch ``cols``, the product scratch ``Zflat`` and the helper
# mailbox ``mb``.
ROW_ARGS = ("kinds", "w", "row", "ints", "src", "dst", "state", "S", "slots", "X", "xoff", "work", "span",
            "T", "cols", "Zflat", "mb")

STAGES = ("rows", "product", "recurrent")


@dataclass(frozen=True)
class RowKind:
    """One row kind: its id in the table (``C_KIND``) and how the interpreter runs it.

    ``stage``:

    - ``"rows"``: ``run(*args)`` once over the row's block of T rows; ``args`` name values
      from ``ROW_ARGS``. ``pool_run``/``pool_args``, when given, replace them in the pool
      schedule.
    - ``"product"``: the interpreter first computes Z = b + W x for all T rows (the stored
      matrix at ``C_WX``, the bias at ``C_BIAS``), then calls ``run(w, row, Z, dst)``.
    - ``"recurrent"``: after the input product, the interpreter adds R h (the stored matrix at
      ``C_WR``, h at ``C_STATE_H``) for each frame or stream, calls
      ``run(w, row, state, base, z, u, v)`` to update the state at ``base`` in place, and
      writes ``C_OUT`` values from ``C_EMIT`` to column ``C_COL`` of the destination.

    ``group``: interpreters are compiled for the kinds of the groups a model uses, plus
    ``"core"`` (the recurrent layers and what a recurrent model needs around them), so that a
    model of core kinds alone does not compile the others.
    """

    id: int
    name: str
    run: Callable
    stage: str = "rows"
    args: tuple[str, ...] = ()
    pool_run: Callable | None = None
    pool_args: tuple[str, ...] = ()
    group: str = "front end"

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"row kind {self.name}: stage must be one of {STAGES}, not {self.stage!r}")
        unknown = sorted(set(self.args + self.pool_args) - set(ROW_ARGS))
        if unknown:
            raise ValueError(f"row kind {self.name}: unknown interpreter values {unknown}; "
                             f"a rows kind may ask for {ROW_ARGS}")
        if self.stage == "rows" and not self.args:
            raise ValueError(f"row kind {self.name}: a rows kind names its arguments")
        if (self.pool_run is None) != (not self.pool_args):
            raise ValueError(f"row kind {self.name}: pool_run and pool_args go together")
