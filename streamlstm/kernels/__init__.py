"""Numba kernels: activations, gemv, cells and the fused network entry points."""
