"""Compilation options shared by every kernel, and the one way the runtime takes an entry point."""

from numba.core.types import Type

# fastmath without nnan/ninf (NaN/Inf stay detectable) and without afn (exact libm calls).
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath=FASTMATH)


def entry_point(dispatcher, args: tuple):
    """The compiled overload of ``dispatcher`` for ``args``, callable without Numba's type dispatch.

    ``args`` holds Numba types or sample values (typed as Numba would type them). Loads the
    overload from the on-disk cache when it can. The entry point checks neither dtype, rank nor
    layout of its arguments: callers guarantee them.
    """
    sig = tuple(a if isinstance(a, Type) else dispatcher.typeof_pyval(a) for a in args)
    dispatcher.compile(sig)
    cres = dispatcher.overloads.get(sig)
    return cres.entry_point if cres is not None else dispatcher
