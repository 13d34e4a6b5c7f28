"""The helper thread of a two-thread Session (the protocol is in ``kernels/split.py``).

The helper spins on its mailbox with the GIL released, serving half of each large product.
After ``IDLE_CYCLES`` without a job it sleeps: on Linux parked in the kernel, woken by the
next step without the GIL (see ``kernels/split.py``); elsewhere on an Event that the next
``step`` sets. Meanwhile the stepping thread claims every job itself, so a sleeping helper
costs speed, never correctness. The helper stops when its Session is closed or garbage
collected.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from numba import from_dtype, types

from .kernels.config import entry_point
from .kernels.kindset import KindSet, entry_for
from .kernels.split import HELPER_STOPPED, MAILBOX_SIZE, MB_STOP, SPLIT_MIN, helper_loop, wake_helper
from .kernels.split import KINDS as PRODUCTS
from .plan import aligned_bytes

IDLE_CYCLES = 20_000_000  # cycle-counter ticks of spinning before the helper sleeps


def worth_a_helper(plan) -> bool:
    """True when some stored-matrix product of a step is large enough (SPLIT_MIN) to be shared
    with a helper."""
    return bool((plan.product_sizes >= SPLIT_MIN).any())


def _serve(loop, mailbox: np.ndarray, like: np.ndarray, wake: threading.Event, parked: list) -> None:
    while loop(mailbox, like, IDLE_CYCLES) != HELPER_STOPPED:
        parked[0] = True
        wake.wait()
        wake.clear()
        parked[0] = False


def _stop(mailbox: np.ndarray, wake: threading.Event, thread: threading.Thread, unpark) -> None:
    mailbox[MB_STOP] = 1
    unpark(mailbox)
    wake.set()
    if thread is not threading.current_thread():
        thread.join()


class Helper:
    """A running helper thread and its mailbox, for a model of ``dtype`` whose kernels are
    compiled for ``kinds`` (the helper's products read the same weight formats)."""

    def __init__(self, dtype: np.dtype, kinds: KindSet):
        ints = types.Array(types.int64, 1, "C")
        loop = entry_point(entry_for(helper_loop, PRODUCTS.with_formats(kinds.formats)),
                           (ints, types.Array(from_dtype(dtype), 1, "C"), types.int64))
        unpark = entry_point(wake_helper, (ints,))
        self.mailbox = aligned_bytes(MAILBOX_SIZE * 8).view(np.int64)  # fields on their own cache lines
        self.parked = [False]
        self.wake = threading.Event()
        thread = threading.Thread(target=_serve, name="streamlstm-helper", daemon=True,
                                  args=(loop, self.mailbox, np.zeros(1, dtype), self.wake, self.parked))
        thread.start()
        self._stop = weakref.finalize(self, _stop, self.mailbox, self.wake, thread, unpark)

    @property
    def running(self) -> bool:
        return self._stop.alive

    def close(self) -> None:
        """Stop the thread (idempotent). Steps after this run on one thread."""
        self._stop()
