"""An on-disk cache for entry points that nothing else links: object code, names only.

Numba caches a compiled function as its object code **and** the LLVM bitcode of everything
it contains, kept for inlining into other jitted functions that call it. Loading parses that
bitcode. For ``advance_at``, the step library of every cell kind and weight format (~400 KB
of bitcode beside ~420 KB of object code), the parse took 0.09-0.18 s of a new process's
0.2 s between Numba's start-up and the first step. ``advance_at`` is only ever called from
Python (``Session.step``), never linked into another function, so its cache entry keeps the
object code and, in place of the bitcode, a module that only defines the same symbol names
(all that loading reads from it: which symbols the object code provides). Where this Numba's cache internals differ from what is
expected here, the ordinary cache is kept.
"""

from llvmlite import binding as llvm, ir
from numba.core.caching import CompileResultCacheImpl, FunctionCache


def names_only(bitcode: bytes) -> bytes:
    """Bitcode of a module that defines the functions and globals ``bitcode`` defines, by name,
    with empty bodies: not code to link or run."""
    full = llvm.parse_bitcode(bitcode)
    stub = ir.Module(name=full.name)
    for f in full.functions:
        if not f.is_declaration:
            fn = ir.Function(stub, ir.FunctionType(ir.VoidType(), []), name=f.name)
            ir.IRBuilder(fn.append_basic_block()).ret_void()
    for g in full.global_variables:
        if not g.is_declaration:
            ir.GlobalVariable(stub, ir.IntType(8), name=g.name).initializer = ir.Constant(ir.IntType(8), 0)
    return llvm.parse_assembly(str(stub)).as_bitcode()


class _NamesOnlyImpl(CompileResultCacheImpl):
    def reduce(self, cres):
        payload = super().reduce(cres)
        try:
            name, kind, (object_code, bitcode) = payload[0]
        except (TypeError, ValueError):  # another Numba's layout: keep it as it is
            return payload
        if kind != "object":
            return payload
        return ((name, kind, (object_code, names_only(bitcode))),) + tuple(payload[1:])


class _NamesOnlyCache(FunctionCache):
    _impl_class = _NamesOnlyImpl


def lean_cache(dispatcher) -> None:
    """Cache ``dispatcher`` (an ``@njit(cache=True)`` function that no jitted code calls) as
    object code and symbol names only."""
    if isinstance(getattr(dispatcher, "_cache", None), FunctionCache):
        dispatcher._cache = _NamesOnlyCache(dispatcher.py_func)
