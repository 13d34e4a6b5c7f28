"""The row interpreter: every row of a Plan's table over a block of T rows of input, for the
three schedules, dispatching on row kinds found in ``kernels/kinds``.

``run_rows(kinds, w, table, state, work, X, xoff, T, slots, hbuf, mb)``:

- **one stream** (``slots`` None): the T rows are consecutive frames of the stream whose flat
  state is ``state`` (one step: T = 1; a chunk: T frames). Recurrent rows run frame after
  frame, each adding R h to its gate row, in reverse order for a backward direction.
- **a pool** (``slots`` an int array): the T rows are one frame each of the streams
  ``slots``, whose states are rows of S values of the slab ``state``. A recurrent row
  gathers their h into ``hbuf`` and adds R h for all of them in one product.

Each row runs as its kind's ``RowKind`` says (``kinds/__init__.py``): a "rows" kind's function
over the block, or the input product for all T rows at once (``split.stored_project``)
followed by a "product" kind's function or a "recurrent" kind's frames. ``slots is None`` is
decided when Numba compiles each entry point, so each schedule compiles to its own loop. Only
the products see ``mb``, the helper mailbox of a two-thread session. Every view is a borrowed
one (``views.py``).

The dispatch is written here from the ``ROW_KINDS`` of every module in ``kernels/kinds``
(Numba compiles a branch per kind only from source), for the kinds of ``kinds``, a
compile-time ``KindSet`` (``kindset.py``): ``run_rows`` is an overload whose implementation
is written and compiled once per set, so a model of the "core" kinds compiles no front-end
kind. The text is a pure function of the kernel sources, under the cache's digest of
``kernels/``; tracebacks show it, and ``GENERATED_SOURCE`` holds the one for every kind.
"""

import importlib
import linecache
import pkgutil
from pathlib import Path

from numba import njit
from numba.extending import overload

from . import kinds
from .config import JIT
from .kinds import RowKind
from .kindset import KindSet
from .layout import (
    C_BIAS, C_COL, C_DST, C_DW, C_EMIT, C_K, C_KIND, C_OUT, C_REVERSE, C_SRC, C_STATE_H, C_WR, C_WX,
    HDR_CMAX, HDR_FINAL, HDR_GMAX, HDR_NROWS, HDR_NSEQ, HDR_STATE, HDR_VMAX, HDR_WMAX, NCOLS,
)
from .split import stored_acc, stored_project
from .stored import described
from .views import matrix, sequence, vector


def find_row_kinds() -> tuple[RowKind, ...]:
    """Every row kind declared by a module of ``kernels/kinds``, by id (two kinds may not share one)."""
    found: dict[int, RowKind] = {}
    for info in sorted(pkgutil.iter_modules(kinds.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{kinds.__name__}.{info.name}")
        for kind in getattr(module, "ROW_KINDS", ()):
            if kind.id in found:
                raise ImportError(f"row kinds {found[kind.id].name!r} and {kind.name!r} ({module.__name__}) "
                                  f"both have id {kind.id}; ids in use: {sorted(found)}")
            found[kind.id] = kind
    return tuple(found[i] for i in sorted(found))


ROW_KINDS = find_row_kinds()


@njit(inline="always", **JIT)
def work_offsets(table, T):
    """Where the scratch of a T-row call starts: (gate rows Z, vector u, vector v, gather
    windows, input copy); the NSEQ sequences of T * Wmax values come first. ``Plan.work_size``
    is the end of this layout."""
    h = table[0]
    zoff = h[HDR_NSEQ] * T * h[HDR_WMAX]
    uoff = zoff + T * h[HDR_GMAX]
    voff = uoff + h[HDR_VMAX]
    coff = voff + h[HDR_VMAX]
    return zoff, uoff, voff, coff, coff + T * h[HDR_CMAX]


@njit(inline="always", **JIT)
def emit(h, dst, t, col, P):
    out = dst[t, col:col + P]  # sliced first: ``dst[t][col + p]`` compiles to scalar stores
    for p in range(P):
        out[p] = h[p]


@njit(inline="always", **JIT)
def stream_frames(kinds, w, row, state, Z, u, v, dst, mb):
    """A recurrent row over T consecutive frames of one stream."""
    T = Z.shape[0]
    kind = row[C_KIND]
    rec = described(row, C_WR)
    h = vector(state, row[C_STATE_H], rec[1])
    reverse = row[C_REVERSE] == 1
    col, P = row[C_COL], row[C_OUT]
    out = vector(state, row[C_EMIT], P)
    for s in range(T):
        t = T - 1 - s if reverse else s
        z = Z[t]
        stored_acc(kinds, w, rec, h, z, mb)
        recurrent_frame(kinds, kind, w, row, state, 0, z, u, v)
        emit(out, dst, t, col, P)


@njit(**JIT)
def gather(slab, S, slots, off, Hb):
    """Hb[t, :] = the P state values at ``off`` of stream slot ``slots[t]``."""
    P = Hb.shape[1]
    for t in range(Hb.shape[0]):
        b = slots[t] * S + off
        h = Hb[t]
        src = slab[b:b + P]
        for p in range(P):
            h[p] = src[p]


@njit(inline="always", **JIT)
def pool_frames(kinds, w, row, slab, S, slots, hbuf, Z, u, v, dst):
    """A recurrent row over one frame each of the T pool streams ``slots``."""
    T = Z.shape[0]
    kind = row[C_KIND]
    rec = described(row, C_WR)
    sh, P = row[C_STATE_H], rec[1]
    Hb = matrix(hbuf, 0, T, P)
    gather(slab, S, slots, sh, Hb)
    stored_acc(kinds, w, rec, Hb, Z, None)
    col, O = row[C_COL], row[C_OUT]
    for t in range(T):
        base = slots[t] * S
        recurrent_frame(kinds, kind, w, row, slab, base, Z[t], u, v)
        emit(vector(slab, base + row[C_EMIT], O), dst, t, col, O)


def _call(name: str, args) -> str:
    return f"{name}({', '.join(args)})"


def _chain(branches: list[tuple[str, list[str]]], otherwise: list[str] | None, indent: str) -> list[str]:
    """``if cond: body`` / ``elif`` ... / ``else: otherwise`` as lines of source at ``indent``."""
    lines = []
    for i, (cond, body) in enumerate(branches):
        lines.append(f"{indent}{'if' if i == 0 else 'elif'} {cond}:")
        lines += [f"{indent}    {b}" for b in body]
    if otherwise is not None:
        if branches:
            lines.append(f"{indent}else:")
            lines += [f"{indent}    {b}" for b in otherwise]
        else:
            lines += [f"{indent}{b}" for b in otherwise]
    return lines


_FRAME_ARGS = ("w", "row", "state", "base", "z", "u", "v")

_RUN_ROWS_HEAD = """
def run_rows(kinds, w, table, state, work, X, xoff, T, slots, hbuf, mb):
    zoff, uoff, voff, coff, _ = work_offsets(table, T)
    span = T * table[0, HDR_WMAX]
    Zflat = vector(work, zoff, T * table[0, HDR_GMAX])
    u = vector(work, uoff, table[0, HDR_VMAX])
    v = vector(work, voff, table[0, HDR_VMAX])
    cols = vector(work, coff, T * table[0, HDR_CMAX])
    S = table[0, HDR_STATE]
    nrows = table[0, HDR_NROWS]
    ints = table.reshape(table.size)[(nrows + 1) * NCOLS:]
    for r in range(1, nrows + 1):
        row = vector(table, r * NCOLS, NCOLS)
        kind = row[C_KIND]
        src = sequence(row[C_SRC], X, xoff, work, span, T, row[C_K])
        dst = sequence(row[C_DST], X, xoff, work, span, T, row[C_DW])
"""

_PRODUCT = [
    "wx = described(row, C_WX)",
    "Z = matrix(Zflat, 0, T, wx[2])",
    "stored_project(kinds, w, wx, vector(w, row[C_BIAS], wx[2]), src, Z, mb)",
]


def interpreter_source(row_kinds: tuple[RowKind, ...]) -> tuple[str, dict]:
    """The source of ``recurrent_frame`` and ``run_rows`` for ``row_kinds``, and the names it
    binds to each kind's functions (``k<id>``, ``k<id>_pool``)."""
    names = {}
    by_stage = {stage: [k for k in row_kinds if k.stage == stage] for stage in ("rows", "product", "recurrent")}
    for k in row_kinds:
        names[f"k{k.id}"] = k.run
        if k.pool_run is not None:
            names[f"k{k.id}_pool"] = k.pool_run
    recurrent = by_stage["recurrent"]
    lines = ["", "def recurrent_frame(kinds, kind, w, row, state, base, z, u, v):",
             '    """The elementwise maths of one frame of a recurrent row, by its kind."""']
    lines += _chain([(f"kind == {k.id}", [f"# {k.name}", _call(f"k{k.id}", _FRAME_ARGS)]) for k in recurrent[:-1]],
                    [f"# {recurrent[-1].name}", _call(f"k{recurrent[-1].id}", _FRAME_ARGS)] if recurrent else ["pass"],
                    "    ")
    lines += _RUN_ROWS_HEAD.rstrip("\n").split("\n")
    frames = _chain([("slots is None", ["stream_frames(kinds, w, row, state, Z, u, v, dst, mb)"])],
                    ["pool_frames(kinds, w, row, state, S, slots, hbuf, Z, u, v, dst)"], "")
    product = _PRODUCT + _chain([(f"kind == {k.id}", [f"# {k.name}", _call(f"k{k.id}", ("w", "row", "Z", "dst"))])
                                 for k in by_stage["product"]], None, "")
    product += (["else:", "    # recurrent kinds"] + ["    " + f for f in frames]) if by_stage["product"] else frames
    branches = []
    for k in by_stage["rows"]:
        body = [_call(f"k{k.id}", k.args)]
        if k.pool_run is not None:
            body = _chain([("slots is None", body)], [_call(f"k{k.id}_pool", k.pool_args)], "")
        branches.append((f"kind == {k.id}", [f"# {k.name}"] + body))
    lines += _chain(branches, product, " " * 8)
    lines.append("    return table[0, HDR_FINAL]")
    return "\n".join(lines) + "\n", names


_generated: dict[tuple[int, ...], dict] = {}


def _interpreter(ids: tuple[int, ...]) -> dict:
    """The generated ``recurrent_frame`` and ``run_rows`` for the kinds ``ids`` (once per set)."""
    found = _generated.get(ids)
    if found is None:
        source, names = interpreter_source(tuple(k for k in ROW_KINDS if k.id in ids))
        tag = "_".join(map(str, ids))
        filename = str(Path(__file__).with_name(f"rows_generated_{tag}.py"))  # not a file: see the module doc
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        found = dict(globals(), **names)
        exec(compile(source, filename, "exec"), found)
        found["GENERATED_SOURCE"] = source
        _generated[ids] = found
    return found


def recurrent_frame(kinds, kind, w, row, state, base, z, u, v):
    """The elementwise maths of one frame of a recurrent row of ``kind`` (one of ``kinds``)."""


def run_rows(kinds, w, table, state, work, X, xoff, T, slots, hbuf, mb):
    """Run every row over T rows of input (see the module docstring); returns the id of the
    sequence holding the output. ``kinds`` (a ``KindSet`` constant) holds every row's kind."""


@overload(recurrent_frame, inline="always", jit_options=JIT)
def _recurrent_frame(kinds, kind, w, row, state, base, z, u, v):
    return _interpreter(kinds.ids)["recurrent_frame"]


@overload(run_rows, jit_options=JIT)
def _run_rows(kinds, w, table, state, work, X, xoff, T, slots, hbuf, mb):
    return _interpreter(kinds.ids)["run_rows"]


def kind_set(used) -> KindSet:
    """The kinds an interpreter for a plan whose rows have the kinds ``used`` handles: every kind
    of the "core" group and of each group a used kind belongs to."""
    used = set(used)
    groups = {"core"} | {k.group for k in ROW_KINDS if k.id in used}
    return KindSet([k.id for k in ROW_KINDS if k.group in groups],
                   "all" if groups >= ALL_GROUPS else "+".join(sorted(groups)).replace(" ", "_"))


ALL_GROUPS = {k.group for k in ROW_KINDS}
ALL_KINDS = kind_set([k.id for k in ROW_KINDS])
GENERATED_SOURCE = _interpreter(ALL_KINDS.ids)["GENERATED_SOURCE"]
