"""The panel-major SIMD product (kernels/simd.py) against float64 NumPy, every storage format."""

import numpy as np
import pytest

from numba import njit

from streamlstm.kernels import simd
from streamlstm.kernels.simd import panel_acc, panel_width, to_pairs, to_panels, to_quads
from streamlstm.plan import to_bf16_bits
from support.unit_checks import INT8_INPUT_BLOCK, int8_blocks

RNG = np.random.default_rng(11)
SHAPES = [(1, 16), (5, 16), (7, 48), (40, 256), (33, 80), (64, 112), (3, 320), (130, 208), (128, 64)]


def stored(W: np.ndarray, dtype, lanes: int = 16) -> np.ndarray:
    """The (K, G) view the kernels get: its buffer holds the panels."""
    K, G = W.shape
    return to_panels(W.astype(dtype), lanes).reshape(K, G)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K,G", SHAPES)
def test_rows_match_numpy_and_each_other(dtype, K, G):
    lanes = 64 // np.dtype(dtype).itemsize
    if G % lanes:
        pytest.skip("G is not a multiple of this dtype's vector")
    W = RNG.standard_normal((K, G)).astype(dtype)
    Wp = stored(W, dtype, lanes)
    for T in (1, 2, 3, 4, 5, 9):
        X = RNG.standard_normal((T, K)).astype(dtype)
        Z = RNG.standard_normal((T, G)).astype(dtype)
        expect = Z.astype(np.float64) + X.astype(np.float64) @ W.astype(np.float64)
        together = Z.copy()
        panel_acc(Wp, X, together)
        tol = 2e-5 * np.sqrt(K) if dtype == np.float32 else 1e-12 * np.sqrt(K)
        assert np.abs(together - expect).max() < tol
        one_by_one = Z.copy()
        for t in range(T):
            panel_acc(Wp, X[t], one_by_one[t])
        assert np.array_equal(together, one_by_one)  # the same FMA chain whatever the rows


def test_column_ranges_touch_only_their_columns():
    K, G = 20, 320
    bw = panel_width(np.float32)
    W = RNG.standard_normal((K, G)).astype(np.float32)
    Wp = stored(W, np.float32, 16)
    x = RNG.standard_normal(K).astype(np.float32)
    whole = np.zeros(G, np.float32)
    panel_acc(Wp, x, whole)
    first, second = np.zeros(G, np.float32), np.zeros(G, np.float32)
    panel_acc(Wp, x, first, None, 0, 2 * bw)
    panel_acc(Wp, x, second, None, 2 * bw, G)
    assert not first[2 * bw:].any() and not second[:2 * bw].any()
    assert np.array_equal(first + second, whole)


def test_strided_inputs():
    K, G = 40, 256
    W = RNG.standard_normal((K, G)).astype(np.float32)
    X = RNG.standard_normal((3, 2 * K)).astype(np.float32)[:, ::2]
    Z = np.zeros((3, G), np.float32)
    panel_acc(stored(W, np.float32, 16), X, Z)
    assert np.abs(Z - X.astype(np.float64) @ W.astype(np.float64)).max() < 1e-4


def bf16_values(a: np.ndarray) -> np.ndarray:
    """float32 values rounded to bf16 (nearest even), as float64."""
    return (to_bf16_bits(a).astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def stored_pairs(W: np.ndarray) -> np.ndarray:
    """W as the (ceil(K/2), G) view of stored bf16 pairs."""
    pairs = to_pairs(to_bf16_bits(W))
    return to_panels(pairs, 16).reshape(pairs.shape)


def stored_quads(W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W as the (ceil(K/4), G) view of stored int8 quads, its column scales (float32) and the
    codes (K, G) they scale."""
    scale = (np.abs(W).max(axis=0) / 127).astype(np.float32)
    codes = np.clip(np.rint(W / scale), -127, 127).astype(np.int8)
    quads = to_quads(codes)
    return to_panels(quads, 16).reshape(quads.shape), scale, codes


def stored_formats(W: np.ndarray) -> dict:
    """W as float32, bf16 bits, int8 codes (one scale per row), bf16 pairs and int8 quads (one
    scale per column): for each, the stored view, its scale (or None), the float64 values it
    stands for and what the product does to its inputs (bf16 pairs: rounds them to bf16; int8
    quads: quantises them per block)."""
    bits = to_bf16_bits(W)
    scale = (np.abs(W).max(axis=1) / 127).astype(np.float32)
    codes = np.rint(W / scale[:, None]).astype(np.int8)
    same = lambda X: X.astype(np.float64)
    quads, column_scale, column_codes = stored_quads(W)
    return {"float32": (stored(W, np.float32), None, W.astype(np.float32).astype(np.float64), same),
            "bf16": (stored(bits, np.uint16), None, bf16_values(W), same),
            "int8": (stored(codes, np.int8), scale, scale[:, None] * codes.astype(np.float64), same),
            "bf16dot": (stored_pairs(W), None, bf16_values(W), bf16_values),
            "int8dot": (quads, column_scale, column_codes * column_scale.astype(np.float64), int8_blocks)}


def assert_rows_agree(product, fmt: tuple, X: np.ndarray, Z: np.ndarray, row) -> np.ndarray:
    """Z + X @ values, computed for all rows at once: close to float64 and bit-identical to
    one row at a time (``row(A, t)``: row t of A as the product takes it). Returns it."""
    Wp, s, values, inputs = fmt
    together = Z.copy()
    product(Wp, X, together, s)
    expect = Z.astype(np.float64) + inputs(X) @ values
    assert np.abs(together - expect).max() < 2e-5 * np.sqrt(X.shape[1])
    one_by_one = Z.copy()
    for t in range(X.shape[0]):
        product(Wp, row(X, t), row(one_by_one, t), s)
    assert np.array_equal(together, one_by_one)
    return together


@pytest.mark.parametrize("K", [1, 2, 3, 4, 5, 37, 64])
def test_bf16_and_int8_codes(K):
    G = 192
    formats = stored_formats(RNG.standard_normal((K, G)).astype(np.float32))
    X = RNG.standard_normal((5, K)).astype(np.float32)
    for name in ("bf16", "int8"):
        Wp, s, values, _ = formats[name]
        Z = np.zeros((5, G), np.float32)
        panel_acc(Wp, X, Z, s)
        assert np.abs(Z - X.astype(np.float64) @ values).max() < 1e-4


@pytest.mark.parametrize("K,G", SHAPES)
def test_codes_on_every_panel_tail(K, G):
    """Words of 2 bf16 / 4 int8 columns (blocks of 16 / 32 columns, and int8's last 16 columns
    when G = 16 mod 32): every tail width, any number of rows."""
    formats = stored_formats(RNG.standard_normal((K, G)))
    widened = stored(formats["bf16"][2].astype(np.float32), np.float32)
    for T in (1, 2, 3, 4, 5, 9):
        X = RNG.standard_normal((T, K)).astype(np.float32)
        Z = RNG.standard_normal((T, G)).astype(np.float32)
        bf16 = assert_rows_agree(panel_acc, formats["bf16"], X, Z, lambda A, t: A[t])
        assert_rows_agree(panel_acc, formats["int8"], X, Z, lambda A, t: A[t])
        assert_rows_agree(panel_acc, formats["bf16dot"], X, Z, lambda A, t: A[t])
        assert_rows_agree(panel_acc, formats["int8dot"], X, Z, lambda A, t: A[t])
        as_floats = Z.copy()
        panel_acc(widened, X, as_floats)
        assert np.array_equal(bf16, as_floats)  # bf16: the same FMA chain as float32 weights


@pytest.mark.parametrize("avx512", [False, True])
def test_pass_geometry_of_either_machine(monkeypatch, avx512):
    """The passes chosen for hosts with and without AVX-512, whichever this host is (LLVM
    splits wider vectors): every format, every tail, 1-9 rows against one row at a time; bf16
    pairs and int8 quads through the emulated dot products (the instructions' own paths: the
    tests below)."""
    monkeypatch.setattr(simd, "_AVX512", avx512)
    monkeypatch.setattr(simd, "MANY_ROWS", simd.many_rows_geometry(avx512))
    monkeypatch.setattr(simd, "_BF16_DOT", False)
    monkeypatch.setattr(simd, "_VNNI", False)

    @njit
    def product(Wt, X, Z, scale):  # compiled here, with the geometry above
        simd._panel_acc(Wt, X, Z, scale, 0, Wt.shape[1])

    for K, G in SHAPES:
        formats = stored_formats(RNG.standard_normal((K, G)))
        for T in (1, 3, 4, 9):
            X = RNG.standard_normal((T, K)).astype(np.float32)
            Z = RNG.standard_normal((T, G)).astype(np.float32)
            for fmt in formats.values():
                assert_rows_agree(product, fmt, X, Z, lambda A, t: A[t:t + 1])


HOST_DOT = [False, True] if simd._BF16_DOT else [False]


@pytest.mark.parametrize("native", HOST_DOT)
def test_bf16_pairs_round_inputs_and_keep_one_chain(monkeypatch, native):
    """bf16 pairs (odd K padded, partial blocks of k, every tail): the inputs rounded to bf16,
    each output one chain of the dot instruction's two rounded steps per pair (high half of the
    pair first), so that the emulation (on any host) and the instruction (on AVX512_BF16 hosts)
    give the same bits, whatever the rows."""
    monkeypatch.setattr(simd, "_BF16_DOT", native)

    @njit
    def product(Wt, X, Z, scale):
        simd._panel_acc(Wt, X, Z, scale, 0, Wt.shape[1])

    for K, G in SHAPES + [(257, 64), (129, 16)]:
        W = RNG.standard_normal((K, G)).astype(np.float32)
        Wp = stored_pairs(W)
        w = bf16_values(W)
        for T in (1, 3, 4, 5, 9):
            X = RNG.standard_normal((T, K)).astype(np.float32)
            Z = RNG.standard_normal((T, G)).astype(np.float32)
            got = assert_rows_agree(product, (Wp, None, w, bf16_values), X, Z, lambda A, t: A[t])
            x, z = bf16_values(X).astype(np.float32), Z.copy()
            for k in range(0, K, 2):  # the chain, pair by pair, in float32
                z = np.float32(z + x[:, k + 1:k + 2] * w[k + 1:k + 2].astype(np.float32)) if k + 1 < K else z
                z = np.float32(z + x[:, k:k + 1] * w[k:k + 1].astype(np.float32))
            assert np.array_equal(got, z), (K, G, T)


def test_bf16_pairs_of_strided_inputs():
    K, G = 45, 80
    W = RNG.standard_normal((K, G)).astype(np.float32)
    X = RNG.standard_normal((3, 2 * K)).astype(np.float32)[:, ::2]
    Z = np.zeros((3, G), np.float32)
    panel_acc(stored_pairs(W), X, Z)
    assert np.array_equal(Z, _contiguous_product(stored_pairs(W), np.ascontiguousarray(X), G))


def _contiguous_product(Wp, X, G):
    Z = np.zeros((X.shape[0], G), np.float32)
    panel_acc(Wp, X, Z)
    return Z


HOST_VNNI = [False, True] if simd._VNNI else [False]


def _quads_product(monkeypatch, native: bool):
    """The int8 quads product compiled (for one row and for many) with or without vpdpbusd."""
    monkeypatch.setattr(simd, "_VNNI", native)

    @njit
    def product(Wt, X, Z, scale):
        simd._panel_acc(Wt, X, Z, scale, 0, Wt.shape[1])

    Wp, scale, _ = stored_quads(np.ones((4, 16), np.float32))
    product(Wp, np.ones((2, 4), np.float32), np.zeros((2, 16), np.float32), scale)
    product(Wp, np.ones(4, np.float32), np.zeros(16, np.float32), scale)
    return product


@pytest.mark.parametrize("native", HOST_VNNI)
def test_int8_quads_quantise_inputs_and_sum_exactly(monkeypatch, native):
    """int8 quads (K padded to a multiple of 4, partial blocks, every tail): each row of X
    quantised per block of inputs, each block's products summed exactly in int32, then scaled
    into the float32 output, so that vpdpbusd (on VNNI hosts) and its emulation (on any host)
    give the same bits, whatever the rows."""
    product = _quads_product(monkeypatch, native)
    emulated_product = _quads_product(monkeypatch, False) if native else None
    for K, G in SHAPES + [(257, 64), (513, 16), (1000, 32)]:
        W = RNG.standard_normal((K, G)).astype(np.float32)
        Wp, scale, codes = stored_quads(W)
        values = codes * scale.astype(np.float64)
        for T in (1, 3, 4, 5, 9):
            X = (RNG.standard_normal((T, K)) * RNG.uniform(0.01, 10, (T, 1))).astype(np.float32)
            X[0, :K // 3] = 0  # a block of zeros has no scale
            Z = RNG.standard_normal((T, G)).astype(np.float32)
            got = assert_rows_agree(product, (Wp, scale, values, int8_blocks), X, Z, lambda A, t: A[t])
            z = Z.astype(np.float64)  # block by block, from the exact integer sums
            for k0 in range(0, K, INT8_INPUT_BLOCK):
                b = X[:, k0:k0 + INT8_INPUT_BLOCK]
                m = np.abs(b).max(axis=1, keepdims=True)
                q = np.rint(b * np.divide(np.float32(127), m, out=np.zeros_like(m), where=m > 0))
                exact = q.astype(np.int64) @ codes[k0:k0 + INT8_INPUT_BLOCK].astype(np.int64)
                z = (z + exact * (m / np.float32(127) * scale).astype(np.float64)).astype(np.float32).astype(np.float64)
            np.testing.assert_allclose(got, z, rtol=1e-6, atol=1e-6 * np.abs(z).max())
            if native:
                emulated = Z.copy()
                emulated_product(Wp, X, emulated, scale)
                assert np.array_equal(got, emulated), (K, G, T)


def test_int8_quads_of_strided_inputs():
    K, G = 45, 80
    Wp, scale, _ = stored_quads(RNG.standard_normal((K, G)).astype(np.float32))
    X = RNG.standard_normal((3, 2 * K)).astype(np.float32)[:, ::2]
    Z, contiguous = np.zeros((3, G), np.float32), np.zeros((3, G), np.float32)
    panel_acc(Wp, X, Z, scale)
    panel_acc(Wp, np.ascontiguousarray(X), contiguous, scale)
    assert np.array_equal(Z, contiguous)


def test_panel_layout_refuses_partial_vectors():
    with pytest.raises(ValueError, match="multiple of 16"):
        to_panels(np.zeros((3, 20)), 16)
