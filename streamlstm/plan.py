"""Network -> Plan: kernel-ready packed weights, the int layer table and the state layout.

``build_plan`` hands a ``PlanBuilder`` to every layer unit in turn; each unit's ``pack``
appends its rows (``kernels/layout.py``), weights and state parts and declares the scratch
it needs. The Plan is immutable once built: one 64-byte aligned weight buffer (read-only),
one int64 table (read-only), the length and initial value of a stream's state vector, and the
scratch size needed for a chunk of T frames.
"""

from __future__ import annotations

import hashlib
import mmap
from dataclasses import dataclass

import numpy as np

from .kernels import activations as A
from .kernels import layout as L
from .kernels.kindset import KindSet
from .kernels.rows import kind_set
from .kernels.simd import to_pairs, to_panels, to_quads
from .errors import NetworkError
from .layers.base import Act, pad as _pad
from .network import Network

ALIGN_BYTES = 64
HUGE_PAGE = 2 << 20
DTYPES = {"float32": np.float32, "float64": np.float64}


class _Packer:
    """Appends aligned blocks (in the final dtype) and remembers their offsets.

    A block equal to one already stored gets that block's offset: layers with tied weights
    (one initializer feeding several nodes) share one packed copy."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype
        self.lanes = ALIGN_BYTES // dtype.itemsize
        self.blocks: list[np.ndarray] = []
        self.size = 0
        self._stored: dict[tuple[int, bytes], int] = {}

    def _append(self, flat: np.ndarray) -> int:
        key = (flat.size, hashlib.blake2b(np.ascontiguousarray(flat).tobytes(), digest_size=20).digest())
        if key in self._stored:
            return self._stored[key]
        off = self._stored[key] = self.size
        padded = _pad(max(flat.size, 1), self.lanes)
        block = np.zeros(padded, dtype=self.dtype)
        block[:flat.size] = flat
        self.blocks.append(block)
        self.size += padded
        return off

    def add(self, a: np.ndarray) -> int:
        flat = np.asarray(a, dtype=np.float64).ravel()
        with np.errstate(over="ignore"):
            cast = flat.astype(self.dtype)
        if not np.all(np.isfinite(cast)):
            raise OverflowError(f"values beyond the {self.dtype.name} range (largest |value| "
                                f"{np.abs(flat).max():.3g})")
        return self._append(cast)

    def add_bytes(self, raw: np.ndarray) -> int:
        """A block of compressed codes (uint16/int8), its bytes packed into buffer elements."""
        b = np.ascontiguousarray(raw).view(np.uint8).ravel()
        b = np.concatenate([b, np.zeros(-b.size % self.dtype.itemsize, np.uint8)])
        return self._append(b.view(self.dtype))

    def add_panels(self, M: np.ndarray) -> int:
        """A (K, G) float matrix, panel-major (the layout ``kernels.simd.panel_acc`` reads)."""
        return self.add(to_panels(M, self.lanes))

    def add_matrix(self, M: np.ndarray, fmt: int) -> tuple[int, int]:
        """A (K, G) matrix in storage format ``fmt``, panel-major; returns (offset, scale offset or 0)."""
        if fmt == L.FMT_FLOAT:
            return self.add_panels(M), 0
        if fmt == L.FMT_BF16:
            return self.add_bytes(to_panels(to_bf16_bits(M), self.lanes)), 0
        if fmt == L.FMT_BF16_DOT:
            return self.add_bytes(to_panels(to_pairs(to_bf16_bits(M)), self.lanes)), 0
        if fmt == L.FMT_INT8_DOT:
            scale = np.abs(M).max(axis=0) / 127.0
            scale[scale == 0] = 1.0
            codes = np.clip(np.rint(M / scale), -127, 127).astype(np.int8)
            return self.add_bytes(to_panels(to_quads(codes), self.lanes)), self.add(scale)
        scale = np.abs(M).max(axis=1) / 127.0
        scale[scale == 0] = 1.0
        codes = np.clip(np.rint(M / scale[:, None]), -127, 127).astype(np.int8)
        return self.add_bytes(to_panels(codes, self.lanes)), self.add(scale)

    def build(self) -> np.ndarray:
        itemsize = self.dtype.itemsize
        buf = aligned_bytes(self.size * itemsize).view(self.dtype)
        if self.blocks:
            buf[:] = np.concatenate(self.blocks)
        buf.flags.writeable = False
        return buf


def _huge_page_bytes(nbytes: int) -> np.ndarray | None:
    """``nbytes`` of anonymous memory the kernel is asked to back with transparent huge pages
    (fewer TLB misses while a step streams megabytes of weights), or None where that cannot
    be asked (not Linux)."""
    if not hasattr(mmap, "MADV_HUGEPAGE"):
        return None
    try:
        mem = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        mem.madvise(mmap.MADV_HUGEPAGE)
    except (OSError, ValueError, AttributeError):
        return None
    return np.frombuffer(mem, dtype=np.uint8)  # keeps ``mem`` alive


def aligned_bytes(nbytes: int) -> np.ndarray:
    """``nbytes`` zeroed bytes starting on a 64-byte boundary (a cache line, a SIMD vector);
    from 2 MB on, on a 2 MB boundary of memory advised for transparent huge pages."""
    raw = _huge_page_bytes(nbytes + HUGE_PAGE) if nbytes >= HUGE_PAGE else None
    align = HUGE_PAGE
    if raw is None:
        align = ALIGN_BYTES
        raw = np.zeros(nbytes + align, dtype=np.uint8)
    start = -raw.ctypes.data % align
    return raw[start:start + nbytes]


def to_bf16_bits(M: np.ndarray) -> np.ndarray:
    """float values -> bfloat16 bit patterns (uint16), rounded to nearest even."""
    bits = np.ascontiguousarray(M, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


@dataclass(frozen=True)
class Plan:
    """Everything the kernels need for one network in one dtype."""

    network: Network
    dtype: np.dtype
    fast_activations: bool
    weight_format: str
    weights: np.ndarray
    table: np.ndarray
    initial_state: np.ndarray
    streamable: bool

    @property
    def state_size(self) -> int:
        return int(self.initial_state.size)

    @property
    def input_size(self) -> int:
        return int(self.table[0, L.HDR_IN])

    @property
    def output_size(self) -> int:
        return int(self.table[0, L.HDR_OUT])

    def work_size(self, frames: int) -> int:
        """Scratch elements of a call over ``frames`` rows (the layout of ``rows.work_offsets``)."""
        h = self.table[0]
        per_row = h[L.HDR_NSEQ] * h[L.HDR_WMAX] + h[L.HDR_GMAX] + h[L.HDR_CMAX] + h[L.HDR_IN]
        return int(frames * per_row + 2 * h[L.HDR_VMAX])

    @property
    def rows(self) -> np.ndarray:
        """The unit rows of the table (without the header and the integer data after them)."""
        return self.table[1:1 + self.table[0, L.HDR_NROWS]]

    @property
    def weight_bytes(self) -> int:
        return int(self.weights.nbytes)

    @property
    def product_sizes(self) -> np.ndarray:
        """(2, rows): K x G of each row's stored input matrix and of its recurrent matrix (0
        where it has none), G padded as stored: the multiply-adds of that product for one frame."""
        rows = self.rows
        return np.stack([rows[:, c + L.M_ROWS] * rows[:, c + L.M_COLS] for c in (L.C_WX, L.C_WR)])

    @property
    def products_per_frame(self) -> int:
        """Multiply-adds of the stored products in one frame of one stream."""
        return int(self.product_sizes.sum())

    @property
    def kinds(self) -> KindSet:
        """The row kinds and the weight format the kernels are compiled for (``rows.kind_set``
        of this plan's kinds, with its one format)."""
        return kind_set(np.unique(self.rows[:, L.C_KIND]).tolist()).with_formats([L.WEIGHT_FORMATS[self.weight_format]])


class PlanBuilder:
    """What a layer unit's ``pack`` writes through: rows, weights, state, scratch needs.

    A unit reads ``source`` (``width`` values per row; a unit of several inputs finds them all
    in ``inputs``), writes the sequence ``next_sequence()`` names, then calls ``advance``. The
    builder hands out work sequences so that a value stays until its last reader has run.
    """

    def __init__(self, network: Network, dtype: np.dtype, fast_activations: bool, fmt: int):
        self.dtype = dtype
        self.fast_activations = fast_activations
        self.weight_format = fmt
        self._pk = _Packer(dtype)
        self.lanes = self._pk.lanes
        self.rows: list[np.ndarray] = []
        self._state: list[np.ndarray] = []
        self.state_size = 0
        self.source, self.width = 0, network.input_size
        self.inputs: list[tuple[int, int]] = [(0, network.input_size)]
        self.widest, self.gates, self.vector, self.cols = network.input_size, self.lanes, self.lanes, 0
        self.sequences = 0
        self.vocabulary = 0
        self._ints: list[np.ndarray] = []
        self._nints = 0
        self._values: dict[int, tuple[int, int]] = {-1: (0, network.input_size)}
        self._kept: set[int] = set()   # sequences holding values read by later layers

    def pad(self, n: int) -> int:
        """n rounded up to the SIMD width of the dtype."""
        return _pad(n, self.lanes)

    def code(self, a: Act) -> int:
        """The kernel code of an activation (its fast form where the Plan uses those)."""
        c = A.CODES[a.name]
        return A.FAST_VARIANT.get(c, c) if self.fast_activations else c

    def params(self, acts: tuple, clip: float | None) -> int:
        """Offset of the float parameters (``layout.PAR_*``) of up to three activations and a clip."""
        p = np.zeros(L.NPARAMS)
        for i, a in enumerate(acts):
            p[L.PAR_F_ALPHA + 2 * i] = 0.0 if np.isnan(a.alpha) else a.alpha
            p[L.PAR_F_BETA + 2 * i] = 0.0 if np.isnan(a.beta) else a.beta
        p[L.PAR_CLIP] = clip if clip is not None else 0.0
        return self._pk.add(p)

    def add(self, a: np.ndarray) -> int:
        """Offset of a block of floats in the weight buffer."""
        return self._pk.add(a)

    def add_panels(self, M: np.ndarray) -> int:
        """Offset of a (K, G) float matrix stored panel-major (read by ``simd.panel_acc``)."""
        return self._pk.add_panels(M)

    def set_matrix(self, row: np.ndarray, col: int, M: np.ndarray) -> None:
        """Store the (K, G) matrix M in the Plan's weight format and describe it in the five
        fields of ``row`` from ``col`` (``layout.M_*``)."""
        off, soff = self._pk.add_matrix(M, self.weight_format)
        row[col + L.M_OFF], row[col + L.M_ROWS], row[col + L.M_COLS] = off, M.shape[0], M.shape[1]
        row[col + L.M_FMT], row[col + L.M_SCALES] = self.weight_format, soff

    def add_state(self, v: np.ndarray) -> int:
        """Offset of a part of the stream state, starting at ``v``."""
        off = self.state_size
        self._state.append(np.asarray(v, dtype=np.float64).ravel())
        self.state_size += v.size
        return off

    def add_ints(self, a) -> int:
        """Offset of a block of integers (an index map) in the table's data area."""
        flat = np.asarray(a, dtype=np.int64).ravel()
        off = self._nints
        self._ints.append(flat)
        self._nints += flat.size
        return off

    def next_sequence(self) -> int:
        """A work sequence the unit may write: none of its inputs, nor its own last output, nor
        a value a later layer reads."""
        busy = self._kept | {s for s, _ in self.inputs} | {self.source}
        seq = next(i for i in range(1, len(busy) + 2) if i not in busy)
        self.sequences = max(self.sequences, seq)
        return seq

    def begin(self, network: Network, i: int) -> None:
        """Point the builder at the inputs of layer i; the sequences of values that later layers
        read stay busy."""
        if i == 0:
            last: dict[int, int] = {}
            for k in range(len(network.layers)):
                for j in network.inputs_of(k):
                    last[j] = k
            self._last_reader = last
            self._live: dict[int, int] = {}
        self.inputs = [self._values[j] for j in network.inputs_of(i)]
        self.source, self.width = self.inputs[0]
        for j in network.inputs_of(i):
            if self._last_reader.get(j) == i:
                self._live.pop(j, None)
        self._kept = set(self._live.values())

    def end(self, i: int) -> None:
        self._values[i] = (self.source, self.width)
        if self._last_reader.get(i, i) > i:
            self._live[i] = self.source

    def row(self, kind: int, dst: int, dst_width: int, *, col: int, out: int,
            src: tuple[int, int] | None = None) -> np.ndarray:
        """A new row reading ``src`` (sequence, width; default ``source``) and writing ``out``
        columns from ``col`` of the sequence ``dst`` (``dst_width`` wide)."""
        seq, width = (self.source, self.width) if src is None else src
        r = np.zeros(L.NCOLS, dtype=np.int64)
        r[L.C_KIND], r[L.C_SRC], r[L.C_DST], r[L.C_K] = kind, seq, dst, width
        r[L.C_DW], r[L.C_COL], r[L.C_OUT] = dst_width, col, out
        self.rows.append(r)
        return r

    def need(self, *, gates: int = 0, vector: int = 0, cols: int = 0) -> None:
        """Scratch a row needs per input row: a gate row of ``gates``, vectors of ``vector``
        values and gathered windows of ``cols`` values."""
        self.gates, self.vector = max(self.gates, gates), max(self.vector, vector)
        self.cols = max(self.cols, cols)

    def advance(self, dst: int, width: int) -> None:
        """The next unit reads ``dst``, ``width`` wide."""
        self.source, self.width = dst, width
        self.widest = max(self.widest, width)

    def build(self, network: Network, weights: str) -> Plan:
        header = np.zeros(L.NCOLS, dtype=np.int64)
        header[L.HDR_NROWS] = len(self.rows)
        header[L.HDR_IN] = network.input_size
        header[L.HDR_OUT] = self.width
        header[L.HDR_WMAX] = self.widest
        header[L.HDR_GMAX] = self.gates
        header[L.HDR_VMAX] = self.vector
        header[L.HDR_FINAL] = self.source
        header[L.HDR_STATE] = self.state_size
        header[L.HDR_NSEQ] = max(self.sequences, 1)
        header[L.HDR_CMAX] = self.cols
        header[L.HDR_VOCAB] = self.vocabulary
        data = np.concatenate(self._ints) if self._ints else np.zeros(0, np.int64)
        data = np.concatenate([data, np.zeros(-data.size % L.NCOLS, np.int64)]).reshape(-1, L.NCOLS)
        table = np.ascontiguousarray(np.concatenate([np.stack([header] + self.rows), data]))
        table.flags.writeable = False
        init = (np.concatenate(self._state) if self._state else np.zeros(0)).astype(self.dtype)
        init.flags.writeable = False
        return Plan(network, self.dtype, bool(self.fast_activations), weights, self._pk.build(), table,
                    init, network.streamable)


def build_plan(network: Network, dtype: str = "float32", fast_activations: bool | None = None,
               weights: str = "float") -> Plan:
    """Pack ``network`` for the kernels: each unit packs itself. Fast (rational) tanh/sigmoid
    default on for float32.

    ``weights`` stores the input and recurrent matrices (and Dense and convolution matrices) as
    "float" (the dtype), "bf16", "int8" (one scale per stored row), "bf16dot" (bf16, and the
    products round their inputs to bf16) or "int8dot" (int8 with one scale per column, and the
    products quantise their inputs to int8); all but "float" need float32.
    """
    if not isinstance(network, Network):
        raise TypeError(f"network: expected a streamlstm Network, got {type(network).__name__}")
    if str(dtype) not in DTYPES:
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
    dt = np.dtype(DTYPES[str(dtype)])
    if weights not in L.WEIGHT_FORMATS:
        raise ValueError(f"weights: expected one of {sorted(L.WEIGHT_FORMATS)}, got {weights!r}")
    fmt = L.WEIGHT_FORMATS[weights]
    if fmt != L.FMT_FLOAT and dt != np.float32:
        raise ValueError(f"weights={weights!r} needs dtype='float32', got {dt.name}")
    if fast_activations is None:
        fast_activations = dt == np.float32
    builder = PlanBuilder(network, dt, bool(fast_activations), fmt)
    for i, layer in enumerate(network.layers):
        builder.begin(network, i)
        try:
            layer.pack(builder)
        except OverflowError as e:
            raise NetworkError(f"{layer.label}: {e}; it cannot run in {dt.name}") from None
        builder.end(i)
    return builder.build(network, weights)
