"""Which row kinds and weight formats an interpreter is compiled for, as a compile-time value.

A ``KindSet`` is a constant the entry points read from their global ``KINDS`` and pass down to
``rows.run_rows`` and to every product (``stored.columns_acc``). Its Numba type
(``KindSetType``) carries the kind ids and the weight formats (``layout.FMT_*``): the
interpreter is written and compiled for exactly those kinds, and the products for exactly those
formats. A model whose rows are all of the common recurrent kinds so compiles none of the
front-end kinds' code, a float model none of the compressed formats' products, and a first step
compiles less. ``entry_for(dispatcher, kinds)`` gives an entry point's copy for another set: the
same code with another ``KINDS``, cached under its own name.
"""

from __future__ import annotations

import types as pytypes

from numba import njit, types
from numba.core.imputils import lower_constant
from numba.extending import NativeValue, models, register_model, typeof_impl, unbox

from .cache import jit_enabled
from .config import JIT
from .layout import WEIGHT_FORMATS

ALL_FORMATS = tuple(sorted(WEIGHT_FORMATS.values()))
_FORMAT_NAMES = {code: name for name, code in WEIGHT_FORMATS.items()}


class KindSet:
    """The ids of the row kinds an interpreter handles and the weight formats its products read
    (default: every format); ``tag`` names the set in cache files."""

    __slots__ = ("ids", "formats", "tag")

    def __init__(self, ids, tag: str, formats=ALL_FORMATS):
        self.ids = tuple(sorted(set(int(i) for i in ids)))
        self.formats = tuple(sorted(set(int(f) for f in formats)))
        unknown = sorted(set(self.formats) - set(ALL_FORMATS))
        if unknown or not self.formats:
            raise ValueError(f"KindSet: weight formats must be some of {ALL_FORMATS}, got {list(formats)}")
        self.tag = tag

    def with_formats(self, formats) -> "KindSet":
        """The same kinds for the weight formats ``formats`` (tagged with their names unless
        they are all of them)."""
        formats = tuple(sorted(set(int(f) for f in formats)))
        tag = self.tag if formats == ALL_FORMATS else f"{self.tag}__{'_'.join(_FORMAT_NAMES[f] for f in formats)}"
        return KindSet(self.ids, tag, formats)

    def __eq__(self, other) -> bool:
        return isinstance(other, KindSet) and (other.ids, other.formats) == (self.ids, self.formats)

    def __hash__(self) -> int:
        return hash((self.ids, self.formats))

    def __contains__(self, kind: int) -> bool:
        return kind in self.ids

    def __repr__(self) -> str:
        return f"KindSet({self.tag}: {list(self.ids)}, formats {[_FORMAT_NAMES[f] for f in self.formats]})"


class KindSetType(types.Dummy):
    """The Numba type of a ``KindSet``: its ids and formats are part of every signature it
    appears in."""

    def __init__(self, ids: tuple[int, ...], formats: tuple[int, ...]):
        self.ids = ids
        self.formats = formats
        super().__init__(name=f"KindSet({','.join(map(str, ids))};{','.join(map(str, formats))})")


register_model(KindSetType)(models.OpaqueModel)


@typeof_impl.register(KindSet)
def _typeof_kind_set(value, context):
    return KindSetType(value.ids, value.formats)


@lower_constant(KindSetType)
def _kind_set_constant(context, builder, ty, value):
    return context.get_dummy_value()


@unbox(KindSetType)
def _unbox_kind_set(typ, obj, c):  # an argument from Python: the type carries all there is
    return NativeValue(c.context.get_dummy_value())


_copies: dict = {}


def entry_for(dispatcher, kinds: KindSet, wrap=None):
    """``dispatcher`` (an entry point whose code reads the global ``KINDS``) for ``kinds``: the
    dispatcher itself when ``kinds`` is its module's ``KINDS``, else a copy of its function whose
    ``KINDS`` is ``kinds``, compiled with the kernels' options under the name
    ``<name>__<tag>`` (its own cache entries). ``wrap`` is applied to a new copy (e.g.
    ``lean_cache``)."""
    if kinds == dispatcher.py_func.__globals__["KINDS"]:
        return dispatcher
    key = (dispatcher, kinds)
    copy = _copies.get(key)
    if copy is None:
        f = dispatcher.py_func
        fn = pytypes.FunctionType(f.__code__, dict(f.__globals__, KINDS=kinds), f.__name__,
                                  f.__defaults__, f.__closure__)
        fn.__qualname__ = f"{f.__qualname__}__{kinds.tag}"
        fn.__module__ = f.__module__
        fn.__doc__ = f.__doc__
        with jit_enabled():  # NUMBA_DISABLE_JIT=1 would give back the Python function
            copy = njit(**JIT)(fn)
        if wrap is not None:
            wrap(copy)
        _copies[key] = copy
    return copy
