"""Network -> Plan: kernel-ready packed weights, the int layer table and the state layout.

The Plan is immutable once built: one 64-byte aligned weight buffer (read-only), one int64
table (read-only, see ``kernels/layout.py``), the length and initial value of a stream's
state vector, and the scratch size needed for a chunk of T frames.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np

from .kernels import activations as A
from .kernels import layout as L
from .kernels.simd import to_panels
from .errors import NetworkError
from .network import GRU, LSTM, RNN, Act, Activation, Dense, Network

ALIGN_BYTES = 64
HUGE_PAGE = 2 << 20
DTYPES = {"float32": np.float32, "float64": np.float64}


def _pad(n: int, lanes: int) -> int:
    return -(-n // lanes) * lanes


class _Packer:
    """Appends aligned blocks (in the final dtype) and remembers their offsets."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype
        self.lanes = ALIGN_BYTES // dtype.itemsize
        self.blocks: list[np.ndarray] = []
        self.size = 0

    def _append(self, flat: np.ndarray) -> int:
        off = self.size
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
    (fewer TLB misses while a step streams megabytes of weights: big 6% faster), or None
    where that cannot be asked (not Linux)."""
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


def _gate_packed_t(M: np.ndarray, gates: int, H: int, Hp: int) -> np.ndarray:
    """(gates*H, K) -> transposed (K, gates*Hp), each gate block starting at a multiple of Hp."""
    K = M.shape[1]
    out = np.zeros((K, gates * Hp))
    for g in range(gates):
        out[:, g * Hp:g * Hp + H] = M[g * H:(g + 1) * H].T
    return out


def _gate_packed_vec(v: np.ndarray, gates: int, H: int, Hp: int) -> np.ndarray:
    out = np.zeros(gates * Hp)
    for g in range(gates):
        out[g * Hp:g * Hp + H] = v[g * H:(g + 1) * H]
    return out


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
        h = self.table[0]
        return int(frames * (2 * h[L.HDR_WMAX] + h[L.HDR_GMAX] + h[L.HDR_IN]) + 2 * h[L.HDR_VMAX])

    @property
    def weight_bytes(self) -> int:
        return int(self.weights.nbytes)


def build_plan(network: Network, dtype: str = "float32", fast_activations: bool | None = None,
               weights: str = "float") -> Plan:
    """Pack ``network`` for the kernels. Fast (rational) tanh/sigmoid default on for float32.

    ``weights`` stores the input and recurrent matrices (and Dense matrices) as "float" (the
    dtype), "bf16" or "int8" (one scale per stored row); compression needs float32.
    """
    network.validate()
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
    pk = _Packer(dt)
    lanes = pk.lanes
    rows: list[np.ndarray] = []
    state_parts: list[np.ndarray] = []
    state_size = 0
    widths, gmax, vmax = [network.input_size], lanes, lanes

    def code(a: Act) -> int:
        c = A.CODES[a.name]
        return A.FAST_VARIANT.get(c, c) if fast_activations else c

    def params(acts: tuple, clip: float | None) -> int:
        p = np.zeros(7)
        for i, a in enumerate(acts):
            p[2 * i] = 0.0 if np.isnan(a.alpha) else a.alpha
            p[2 * i + 1] = 0.0 if np.isnan(a.beta) else a.beta
        p[6] = clip if clip is not None else 0.0
        return pk.add(p)

    def new_row(kind, src, dst, K, DW, col, H) -> np.ndarray:
        r = np.zeros(L.NCOLS, dtype=np.int64)
        r[L.C_KIND], r[L.C_SRC], r[L.C_DST], r[L.C_K], r[L.C_DW], r[L.C_COL], r[L.C_H] = (
            kind, src, dst, K, DW, col, H)
        rows.append(r)
        return r

    def add_state(v: np.ndarray) -> int:
        nonlocal state_size
        off = state_size
        state_parts.append(np.asarray(v, dtype=np.float64).ravel())
        state_size += v.size
        return off

    cur, width = 0, network.input_size
    try:
        for layer in network.layers:
            dst = 1 if cur != 1 else 2
            if isinstance(layer, (LSTM, GRU, RNN)):
                D, H = layer.num_directions, layer.hidden_size
                Hp, P = _pad(H, lanes), layer.unit_output_size
                DW = D * P
                for d in range(D):
                    rev = 1 if (layer.direction == "reverse" or d == 1) else 0
                    acts = layer.activations[d * layer.n_acts:(d + 1) * layer.n_acts]
                    Wb = layer.Wb[d] if layer.Wb is not None else np.zeros(layer.W.shape[1])
                    Rb = layer.Rb[d] if layer.Rb is not None else np.zeros(layer.W.shape[1])
                    h0 = layer.initial_h[d] if layer.initial_h is not None else np.zeros(P)
                    kind = {LSTM: L.K_LSTM, GRU: L.K_GRU, RNN: L.K_RNN}[type(layer)]
                    r = new_row(kind, cur, dst, width, DW, d * P, H)
                    r[L.C_HP], r[L.C_P], r[L.C_REV] = Hp, P, rev
                    r[L.C_ACT:L.C_ACT + len(acts)] = [code(a) for a in acts]
                    r[L.C_PAR] = params(acts, layer.clip)
                    r[L.C_FLAGS] = layer.clip is not None
                    r[L.C_SH] = add_state(h0)
                    if isinstance(layer, LSTM):
                        G = 4 * Hp
                        r[L.C_WX], r[L.C_SX] = pk.add_matrix(_gate_packed_t(layer.W[d], 4, H, Hp), fmt)
                        r[L.C_WR], r[L.C_SR] = pk.add_matrix(_gate_packed_t(layer.R[d], 4, H, Hp), fmt)
                        r[L.C_B] = pk.add(_gate_packed_vec(Wb + Rb, 4, H, Hp))
                        Pp = _pad(P, lanes) if layer.proj is not None else 0
                        projt = np.zeros((H, Pp))
                        if layer.proj is not None:
                            projt[:, :P] = layer.proj[d].T
                        r[L.C_WR2], r[L.C_PP] = pk.add_panels(projt), Pp  # (H, 0) when there is no projection
                        r[L.C_PEEP] = pk.add(layer.P[d] if layer.P is not None else np.zeros(3 * H))
                        c0 = layer.initial_c[d] if layer.initial_c is not None else np.zeros(H)
                        r[L.C_SC] = add_state(c0)
                        default = [a.name for a in acts] == ["Sigmoid", "Tanh", "Tanh"]
                        fused = (default and fast_activations and layer.clip is None
                                 and not layer.input_forget and layer.P is None and layer.proj is None)
                        r[L.C_FLAGS + 1:L.C_FLAGS + 5] = [layer.input_forget, layer.P is not None,
                                                          layer.proj is not None, fused]
                        vmax = max(vmax, Hp, Pp)
                    elif isinstance(layer, GRU):
                        G = 3 * Hp
                        b = Wb.copy()
                        if not layer.linear_before_reset:
                            b = b + Rb
                        else:
                            b[:2 * H] += Rb[:2 * H]
                        r[L.C_WX], r[L.C_SX] = pk.add_matrix(_gate_packed_t(layer.W[d], 3, H, Hp), fmt)
                        r[L.C_WR], r[L.C_SR] = pk.add_matrix(_gate_packed_t(layer.R[d][:2 * H], 2, H, Hp), fmt)
                        r[L.C_WR2] = pk.add_panels(_gate_packed_t(layer.R[d][2 * H:], 1, H, Hp))
                        r[L.C_B] = pk.add(_gate_packed_vec(b, 3, H, Hp))
                        rbh = Rb[2 * H:] if layer.linear_before_reset else np.zeros(H)
                        r[L.C_B2] = pk.add(_gate_packed_vec(rbh, 1, H, Hp))
                        r[L.C_FLAGS + 1] = layer.linear_before_reset
                        vmax = max(vmax, Hp)
                    else:
                        G = Hp
                        r[L.C_WX], r[L.C_SX] = pk.add_matrix(_gate_packed_t(layer.W[d], 1, H, Hp), fmt)
                        r[L.C_WR], r[L.C_SR] = pk.add_matrix(_gate_packed_t(layer.R[d], 1, H, Hp), fmt)
                        r[L.C_B] = pk.add(_gate_packed_vec(Wb + Rb, 1, H, Hp))
                    r[L.C_G], r[L.C_FMT] = G, fmt
                    gmax = max(gmax, G)
                widths.append(DW)
                cur, width = dst, DW
                if D == 2 and layer.merge != "concat":
                    dst2 = 1 if cur != 1 else 2
                    r = new_row(L.K_MERGE, cur, dst2, DW, P, 0, P)
                    r[L.C_MERGE] = L.MERGE_CODES[layer.merge]
                    cur, width = dst2, P
            elif isinstance(layer, Dense):
                O = layer.output_size
                G = _pad(O, lanes)
                r = new_row(L.K_DENSE, cur, dst, width, O, 0, O)
                r[L.C_G], r[L.C_FMT] = G, fmt
                r[L.C_WX], r[L.C_SX] = pk.add_matrix(_gate_packed_t(layer.W, 1, O, G), fmt)
                r[L.C_B] = pk.add(_gate_packed_vec(layer.b if layer.b is not None else np.zeros(O), 1, O, G))
                r[L.C_ACT] = code(layer.activation)
                r[L.C_PAR] = params((layer.activation,), None)
                gmax = max(gmax, G)
                widths.append(O)
                cur, width = dst, O
            elif isinstance(layer, Activation):
                r = new_row(L.K_ACT, cur, dst, width, width, 0, width)
                r[L.C_ACT] = code(layer.activation)
                r[L.C_PAR] = params((layer.activation,), None)
                cur = dst
            else:  # pragma: no cover - Network.validate rejects other types
                raise TypeError(type(layer).__name__)
    except OverflowError as e:
        raise NetworkError(f"{layer.label}: {e}; it cannot run in {dt.name}") from None

    header = np.zeros(L.NCOLS, dtype=np.int64)
    header[L.HDR_NROWS] = len(rows)
    header[L.HDR_IN] = network.input_size
    header[L.HDR_OUT] = width
    header[L.HDR_WMAX] = max(widths)
    header[L.HDR_GMAX] = gmax
    header[L.HDR_VMAX] = vmax
    header[L.HDR_FINAL] = cur
    header[L.HDR_STATE] = state_size
    table = np.ascontiguousarray(np.stack([header] + rows))
    table.flags.writeable = False
    init = (np.concatenate(state_parts) if state_parts else np.zeros(0)).astype(dt)
    init.flags.writeable = False
    return Plan(network, dt, bool(fast_activations), weights, pk.build(), table, init, network.streamable)
