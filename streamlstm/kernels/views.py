"""Cheap C-contiguous views into flat buffers, for the kernels' hot path.

Two Numba costs made plain slicing expensive inside one network step:
``buf[a:b].reshape(r, c)`` runs a checked, general reshape, and every view passed to another
function is reference counted with atomic instructions (docs/ARCHITECTURE.md). These
intrinsics build C-layout views directly and **borrow** the memory: the view carries no
MemInfo, so Numba's refcounting of it is a null check. They are only for views that live
inside one kernel call, over buffers the caller keeps alive for that call (the Model and
Session do). Callers guarantee the block lies inside the buffer (the Plan lays out every
block).

``matrix_u16`` / ``matrix_i8`` reinterpret the float buffer's bytes, for compressed weights
(bf16 bit patterns, int8 codes) packed into the same buffer; ``off`` counts buffer elements.
``floats_at``/``ints_at`` view memory by address: a Session passes its buffers to the kernel
as one int (see ``engine.advance_at``), which crosses the Python->Numba boundary faster than
four arrays.
"""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_untracked
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from .config import JIT


def _borrowed(context, builder, rettype: types.Array, data, shape: list):
    """A C-layout array of ``rettype`` over ``data`` with no MemInfo (not reference counted)."""
    elem = context.get_data_type(rettype.dtype)
    itemsize = context.get_constant(types.intp, context.get_abi_sizeof(elem))
    strides = [itemsize] if len(shape) == 1 else [builder.mul(shape[1], itemsize), itemsize]
    out = make_array(rettype)(context, builder)
    null = context.get_constant_null(types.MemInfoPointer(types.voidptr))
    populate_array(out, data=builder.bitcast(data, elem.as_pointer()), shape=shape, strides=strides,
                   itemsize=itemsize, meminfo=null, parent=None)
    return impl_ret_untracked(context, builder, rettype, out._getvalue())


def _view_codegen(elem: types.Type, readonly: bool, ndim: int = 2):
    rettype = types.Array(elem, ndim, "C", readonly=readonly)

    def codegen(context, builder, signature, args):
        src = make_array(signature.args[0])(context, builder, value=args[0])
        dims = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], signature.args[1:])]
        return _borrowed(context, builder, rettype, cgutils.gep_inbounds(builder, src.data, dims[0]), dims[1:])

    return rettype, codegen


def _is_flat(buf) -> bool:
    return isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"


@intrinsic
def vector(typingctx, buf, off, n):
    """buf[off : off + n], borrowed."""
    if not isinstance(buf, types.Array) or buf.layout != "C":
        return None
    rettype, codegen = _view_codegen(buf.dtype, not buf.mutable, ndim=1)
    return rettype(buf, off, n), codegen


def _matrix_typer(buf, off, rows, cols, elem):
    if not _is_flat(buf):
        return None
    rettype, codegen = _view_codegen(elem, not buf.mutable)
    return rettype(buf, off, rows, cols), codegen


@intrinsic
def matrix(typingctx, buf, off, rows, cols):
    """buf[off : off + rows*cols] seen as a C-contiguous (rows, cols) array."""
    return _matrix_typer(buf, off, rows, cols, getattr(buf, "dtype", None))


@intrinsic
def matrix_u16(typingctx, buf, off, rows, cols):
    """(rows, cols) uint16 values stored from element ``off`` of ``buf``."""
    return _matrix_typer(buf, off, rows, cols, types.uint16)


@intrinsic
def matrix_u32(typingctx, buf, off, rows, cols):
    """(rows, cols) uint32 values stored from element ``off`` of ``buf``."""
    return _matrix_typer(buf, off, rows, cols, types.uint32)


@intrinsic
def matrix_i32(typingctx, buf, off, rows, cols):
    """(rows, cols) int32 values stored from element ``off`` of ``buf``."""
    return _matrix_typer(buf, off, rows, cols, types.int32)


@intrinsic
def matrix_i8(typingctx, buf, off, rows, cols):
    """(rows, cols) int8 values stored from element ``off`` of ``buf``."""
    return _matrix_typer(buf, off, rows, cols, types.int8)


def _address_codegen(rettype: types.Array):
    def codegen(context, builder, signature, args):
        n = context.cast(builder, args[1], signature.args[1], types.intp)
        return _borrowed(context, builder, rettype, builder.inttoptr(args[0], ir.IntType(8).as_pointer()), [n])

    return codegen


def _floats_at_typer(addr, n, like, readonly: bool):
    if not isinstance(addr, types.Integer) or not isinstance(like, types.Array):
        return None
    rettype = types.Array(like.dtype, 1, "C", readonly=readonly)
    return rettype(addr, n, like), _address_codegen(rettype)


@intrinsic
def floats_at(typingctx, addr, n, like):
    """The ``n`` values of ``like``'s dtype at memory address ``addr``, borrowed (1-D, C)."""
    return _floats_at_typer(addr, n, like, False)


@intrinsic
def const_floats_at(typingctx, addr, n, like):
    """``floats_at``, typed read-only (for the Plan's weights)."""
    return _floats_at_typer(addr, n, like, True)


@intrinsic
def ints_at(typingctx, addr, n):
    """The ``n`` int64 values at memory address ``addr``, borrowed, read-only (1-D, C)."""
    if not isinstance(addr, types.Integer):
        return None
    rettype = types.Array(types.int64, 1, "C", readonly=True)
    return rettype(addr, n), _address_codegen(rettype)


@njit(inline="always", **JIT)
def sequence(i, X, xoff, work, span, rows, cols):
    """Sequence ``i`` of a block (0: the input X from ``xoff``; i >= 1: work sequence i, each
    ``span`` values long) seen as (rows, cols)."""
    if i == 0:
        return matrix(X, xoff, rows, cols)
    return matrix(work, (i - 1) * span, rows, cols)
