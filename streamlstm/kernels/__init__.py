"""Numba kernels: activations, gemv, cells and the fused network entry points."""

from numba.np.ufunc.parallel import _launch_threads

# The step kernels reach Numba parallel regions (used when a model asks for threads > 1).
# Loading such code from the on-disk cache needs the threading layer's symbols registered
# first, or LLVM aborts with "Symbol not found: allocate_sched". Launching costs ~4 ms once
# and leaves the layer's workers asleep until a multi-threaded model runs.
_launch_threads()
