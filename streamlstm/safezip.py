"""Size checks for zip archive members, shared by every loader that opens a zip (.npz, .keras, .pt).

A member is refused before it is read when it declares more than ``limit`` bytes, when it claims
more stored bytes than the whole archive holds, or when it is large and expands beyond
``MAX_EXPANSION`` times its stored size: real weights compress by 2-4x, a zip bomb by 1000x.
A member that passes is charged, at its declared size, to the load budget of the load in
progress (``streamlstm.budget``), so many members each just under the bomb floor cannot add up to
gigabytes either.
"""

from __future__ import annotations

import zipfile

from .budget import active as active_budget

MAX_EXPANSION = 100             # declared size / stored size above which a big member is a bomb
BOMB_FLOOR_BYTES = 16 << 20     # members below this size are never called bombs


def check_member(info: zipfile.ZipInfo, where: str, error: type[Exception] = ValueError, *,
                 limit: int | None = None, archive_size: int | None = None) -> None:
    """Raise ``error`` naming ``where`` and the member if its declared sizes are not credible."""
    if limit is not None and info.file_size > limit:
        raise error(f"{where}: archive member {info.filename!r} declares {info.file_size} bytes "
                    f"(limit {limit})")
    if archive_size is not None and info.compress_size > archive_size:
        raise error(f"{where}: archive member {info.filename!r} claims {info.compress_size} "
                    f"stored bytes, more than the archive's {archive_size}")
    if is_bomb(info.file_size, info.compress_size):
        raise error(f"{where}: archive member {info.filename!r} declares {info.file_size} bytes but "
                    f"stores {info.compress_size}: refusing a possible zip bomb")
    budget = active_budget()
    if budget is not None:
        try:
            budget.take(info.file_size, f"archive member {info.filename!r}")
        except ValueError as e:
            raise error(str(e)) from None


def is_bomb(declared: int, stored: int) -> bool:
    """True when ``declared`` bytes are implausibly many for ``stored`` bytes of storage."""
    return declared > BOMB_FLOOR_BYTES and declared > MAX_EXPANSION * max(stored, 1)
