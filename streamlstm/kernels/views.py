"""A cheap C-contiguous 2-D view into a flat buffer, for the kernels' hot path.

``buf[off:off + r*c].reshape(r, c)`` costs ~20 ns in Numba (a checked, general reshape), more
than a small gemv; ``as_strided`` is cheap but yields an 'A'-layout array that LLVM will not
vectorise. ``matrix`` builds the C-layout view directly: same data, same memory owner, no
checks. Callers guarantee ``off + rows*cols <= buf.size`` (the Plan lays out every block).
"""

from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


@intrinsic
def matrix(typingctx, buf, off, rows, cols):
    """buf[off : off + rows*cols] seen as a C-contiguous (rows, cols) array."""
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"):
        return None
    rettype = types.Array(buf.dtype, 2, "C", readonly=not buf.mutable)
    sig = rettype(buf, off, rows, cols)

    def codegen(context, builder, signature, args):
        bufty = signature.args[0]
        src = make_array(bufty)(context, builder, value=args[0])
        o, r, c = (context.cast(builder, v, t, types.intp)
                   for v, t in zip(args[1:], signature.args[1:]))
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(
            context.get_data_type(bufty.dtype)))
        out = make_array(rettype)(context, builder)
        populate_array(out, data=cgutils.gep_inbounds(builder, src.data, o),
                       shape=[r, c], strides=[builder.mul(c, itemsize), itemsize],
                       itemsize=itemsize, meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, rettype, out._getvalue())

    return sig, codegen
