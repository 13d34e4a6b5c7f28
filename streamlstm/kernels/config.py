"""Compilation options shared by every kernel, and ``entry_point``, through which every compile goes."""

from numba.core.types import Type

from .cache import announced_compile

# fastmath without nnan/ninf (NaN/Inf stay detectable) and without afn (exact libm calls).
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath=FASTMATH)


def entry_point(dispatcher, args: tuple):
    """The compiled overload of ``dispatcher`` for ``args``, callable without Numba's type dispatch.

    ``args`` holds Numba types or sample values (typed as Numba would type them). Loads the
    overload from the on-disk cache when it can. The entry point checks neither dtype, rank nor
    layout of its arguments: callers guarantee them. A real compile (not a cache load) is
    announced on stderr and the ``streamlstm`` logger.
    """
    sig = tuple(a if isinstance(a, Type) else dispatcher.typeof_pyval(a) for a in args)
    with announced_compile(dispatcher, sig):
        dispatcher.compile(sig)
    cres = dispatcher.overloads.get(sig)
    return cres.entry_point if cres is not None else dispatcher
