"""Which row kinds an interpreter is compiled for, as a compile-time value.

A ``KindSet`` is a constant the entry points read from their global ``KINDS`` and pass down to
``rows.run_rows``, whose Numba type (``KindSetType``) carries the kind ids: the interpreter is
written and compiled for exactly those kinds. A model whose rows are all of the common
recurrent kinds so compiles none of the front-end kinds' code, and a first step compiles less.
``entry_for(dispatcher, kinds)`` gives an entry point's copy for another set: the same code
with another ``KINDS``, cached under its own name.
"""

from __future__ import annotations

import types as pytypes

from numba import njit, types
from numba.core.imputils import lower_constant
from numba.extending import models, register_model, typeof_impl

from .cache import jit_enabled
from .config import JIT


class KindSet:
    """The ids of the row kinds an interpreter handles; ``tag`` names the set in cache files."""

    __slots__ = ("ids", "tag")

    def __init__(self, ids, tag: str):
        self.ids = tuple(sorted(set(int(i) for i in ids)))
        self.tag = tag

    def __eq__(self, other) -> bool:
        return isinstance(other, KindSet) and other.ids == self.ids

    def __hash__(self) -> int:
        return hash(self.ids)

    def __contains__(self, kind: int) -> bool:
        return kind in self.ids

    def __repr__(self) -> str:
        return f"KindSet({self.tag}: {list(self.ids)})"


class KindSetType(types.Dummy):
    """The Numba type of a ``KindSet``: its ids are part of every signature it appears in."""

    def __init__(self, ids: tuple[int, ...]):
        self.ids = ids
        super().__init__(name=f"KindSet({','.join(map(str, ids))})")


register_model(KindSetType)(models.OpaqueModel)


@typeof_impl.register(KindSet)
def _typeof_kind_set(value, context):
    return KindSetType(value.ids)


@lower_constant(KindSetType)
def _kind_set_constant(context, builder, ty, value):
    return context.get_dummy_value()


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
