"""Compilation options shared by every kernel."""

# fastmath without nnan/ninf (NaN/Inf stay detectable) and without afn (exact libm calls).
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath=FASTMATH)
