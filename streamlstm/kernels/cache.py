"""Where the kernels' compiled code is cached, keyed on all kernel sources and checked on load.

Numba keys a cache entry on its own source file only, while an entry point contains the inlined
code of every kernel module it calls; and it unpickles whatever bytes it finds. So for
functions defined under ``streamlstm/kernels`` this module replaces two pieces of Numba's cache:

- **A locator** (installed ahead of Numba's own) that puts every entry in a directory named by
  the digest of all kernel sources and the Python, Numba and llvmlite versions. Any edit to any
  kernel file, or an upgrade, starts a new directory; nothing stale can be found. Numba's index
  key still separates CPUs (name and features), so a directory copied to another CPU model is
  a cache miss, not a crash. The base directory is the first that works of: ``NUMBA_CACHE_DIR``;
  the package's ``kernels/__pycache__``; the user cache (``$XDG_CACHE_HOME`` or ``~/.cache``);
  a private per-user folder in the temp directory; else no cache at all. Falling back past the
  user cache gives one ``CacheWarning``. A prebuilt directory that is readable but not
  writable (an image's cache built by ``streamlstm compile``) is used read-only.
- **A checked cache file**: index and data files start with a magic tag and the SHA-256 of the
  rest, verified before anything is unpickled. A truncated, empty or garbled file is a cache
  miss: the function is recompiled and the entry rewritten. A failed write is logged, never
  raised. (The digest detects damage, not tampering: whoever can write the cache directory
  can run code, as with any Numba cache.)
- **Safe to share between processes**: Numba numbers a function's data files in order and
  writes the index first, so two processes saving different signatures at once could take the
  same number, and the index could then send one signature to the other's code (the kernels of
  two weight formats have the same arguments, so that code would run and give wrong numbers).
  Here each signature's data file is named by the digest of its key and holds the key, checked
  on load, and index updates take a lock: a race costs at most a recompile.

It also makes the kernels compile under ``NUMBA_DISABLE_JIT=1`` (they use Numba intrinsics and
cannot run as Python; the user's own code still runs as Python), and announces compiles.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import shutil
import stat
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

import llvmlite
import numba
from numba import types
from numba.core import caching, config, event
from numba.core.caching import IndexDataCacheFile, _CacheLocator

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None

logger = logging.getLogger("streamlstm")


def notice(message: str) -> None:
    """Log ``message`` at INFO and, unless ``STREAMLSTM_QUIET=1``, print it on stderr as
    ``streamlstm: message``, so a long pause (a first compile) is explained even where logging
    is not configured."""
    printed = os.environ.get("STREAMLSTM_QUIET", "") in ("", "0")
    logger.info(message, extra={"streamlstm_on_stderr": printed})  # a stderr handler can skip it
    if printed:
        try:
            print(f"streamlstm: {message}", file=sys.stderr, flush=True)
        except (OSError, ValueError):  # a closed or broken stderr must not break a step
            pass

KERNELS_DIR = Path(__file__).resolve().parent
_MAGIC = b"streamlstm-cache-1\n"
_DIGEST_BYTES = hashlib.sha256().digest_size


class CacheWarning(UserWarning):
    """The compile cache could not be kept where expected (see ``docs/DEPLOYMENT.md``)."""


def source_digest(root: Path = KERNELS_DIR) -> str:
    """Hex digest of every kernel source file under ``root`` (relative path and bytes)."""
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*.py") if "__pycache__" not in q.parts):
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def cache_key(sources: str) -> str:
    """``<sources>-<toolchain>``: the kernel sources' digest and one of the Python, Numba and
    llvmlite versions. Environments that share a source tree (venvs of several Pythons on one
    checkout) get directories of their own, and only other *sources* count as stale."""
    toolchain = hashlib.sha256(f"{sys.version}|{numba.__version__}|{llvmlite.__version__}".encode()).hexdigest()
    return f"{sources[:24]}-{toolchain[:8]}"


class Location(NamedTuple):
    """The cache directory in use (None: no cache), whether it takes writes, and where it came from."""

    path: Path | None
    writable: bool
    origin: str


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def _readable_entries(path: Path) -> bool:
    try:
        return os.access(path, os.R_OK | os.X_OK) and any(path.glob("*.nbi"))
    except OSError:
        return False


def _private_dir(base: Path) -> bool:
    """``base`` exists or was made as a directory only this user can write (never a planted one)."""
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(base)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def _user_cache_home() -> Path | None:
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg)
    home = os.path.expanduser("~")
    return Path(home, ".cache") if home != "~" and os.path.isdir(home) else None


def _drop_other_sources(pycache: Path, keep: Path) -> None:
    """In the package's own ``__pycache__``: remove entries of other kernel sources (ours only)."""
    sources = keep.name.split("-")[1]
    try:
        for p in pycache.iterdir():
            if p.is_dir() and p.name.startswith("streamlstm-") and p.name.split("-")[1] != sources:
                shutil.rmtree(p, ignore_errors=True)
            elif p.suffix in (".nbi", ".nbc"):  # the flat layout of earlier versions
                p.unlink(missing_ok=True)
    except OSError:
        pass


def choose_location(key: str, numba_cache_dir: str = "", *,
                    pycache: Path = KERNELS_DIR / "__pycache__") -> Location:
    """The first usable cache directory for ``key`` (from ``cache_key``; see the module
    docstring); ``pycache`` is the package's own."""
    name = f"streamlstm-{key}"
    problems = []
    candidates = []
    if numba_cache_dir:
        candidates.append((Path(numba_cache_dir) / name, "NUMBA_CACHE_DIR"))
    candidates.append((pycache / name, "package"))
    user = _user_cache_home()
    if user is not None:
        candidates.append((user / "streamlstm" / name, "user cache"))
    for path, origin in candidates:
        if _writable(path):
            if origin == "package":
                _drop_other_sources(path.parent, path)
            if problems:
                _warn(problems, path)
            return Location(path, True, origin)
        if _readable_entries(path):
            return Location(path, False, origin)
        problems.append(f"the {origin} folder {path.parent} is not writable")
    if user is None:
        problems.append("HOME does not exist" if "HOME" in os.environ else "HOME is not set")
    temp = Path(tempfile.gettempdir()) / f"streamlstm-{os.getuid()}"
    if _private_dir(temp) and _writable(temp / name):
        _warn(problems, temp / name)
        return Location(temp / name, True, "temp")
    _warn(problems + [f"no private folder could be made in {temp.parent}"], None)
    return Location(None, False, "none")


def _warn(problems: list[str], path: Path | None) -> None:
    where = f"compiled kernels are cached in {path}" if path else "compiled kernels are not cached (every process compiles)"
    warnings.warn(f"streamlstm: {'; '.join(problems)}: {where}. Set NUMBA_CACHE_DIR to a writable "
                  "directory to choose the place.", CacheWarning, stacklevel=2)


class _CheckedCacheFile(IndexDataCacheFile):
    """Numba's index/data files framed as magic + SHA-256 + pickle, verified before unpickling."""

    _warned_unsaved = False

    def _frame(self, obj) -> bytes:
        payload = self._dump(obj)
        return _MAGIC + hashlib.sha256(payload).digest() + payload

    def _read_checked(self, path: str):
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError:
            return None
        head = len(_MAGIC) + _DIGEST_BYTES
        if (len(raw) < head or not raw.startswith(_MAGIC)
                or hashlib.sha256(raw[head:]).digest() != raw[len(_MAGIC):head]):
            logger.warning("cache file %s is damaged (truncated or altered): recompiling", path)
            return None
        try:
            return pickle.loads(raw[head:])
        except Exception as e:  # a sound frame around an unreadable pickle: a miss all the same
            logger.warning("cache file %s cannot be read (%s): recompiling", path, e)
            return None

    def _load_index(self) -> dict:
        entry = self._read_checked(self._index_path)
        if not (isinstance(entry, tuple) and len(entry) == 3):
            return {}
        version, stamp, overloads = entry
        if version != self._version or stamp != self._source_stamp or not isinstance(overloads, dict):
            return {}
        return overloads

    def _save_index(self, overloads: dict) -> None:
        with self._open_for_write(self._index_path) as f:
            f.write(self._frame((self._version, self._source_stamp, overloads)))

    def _load_data(self, name: str):
        return self._read_checked(self._data_path(name))

    def _save_data(self, name: str, data) -> None:
        with self._open_for_write(self._data_path(name)) as f:
            f.write(self._frame(data))

    def _data_name_of(self, key) -> str:
        base = self._index_name[:-len(".nbi")]
        return f"{base}.{hashlib.sha256(self._dump(key)).hexdigest()[:24]}.nbc"

    @contextmanager
    def _index_lock(self) -> Iterator[None]:
        if fcntl is None:  # no flock: a lost index update is a recompile, never wrong code
            yield
            return
        with open(os.path.join(self._cache_path, f".{self._index_name}.lock"), "ab") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def load(self, key):
        name = self._load_index().get(key)
        entry = None if name is None else self._load_data(name)
        if not (isinstance(entry, tuple) and len(entry) == 2 and entry[0] == key):
            return None  # absent, damaged, or another signature's code
        return entry[1]

    def save(self, key, data) -> None:
        try:
            name = self._data_name_of(key)
            self._save_data(name, (key, data))
            with self._index_lock():
                overloads = self._load_index()
                if overloads.get(key) != name:
                    overloads[key] = name
                    self._save_index(overloads)
        except OSError as e:
            if not _CheckedCacheFile._warned_unsaved:
                _CheckedCacheFile._warned_unsaved = True
                logger.warning("compiled code not saved in %s (%s): the next process compiles again",
                               self._cache_path, e)


class _NoCacheFile(IndexDataCacheFile):
    """Neither loads nor saves: no usable cache directory."""

    def load(self, key):
        return None

    def save(self, key, data) -> None:
        pass

    def flush(self) -> None:
        pass


class KernelCacheLocator(_CacheLocator):
    """Numba cache locator for functions defined under ``streamlstm/kernels`` (see the module doc)."""

    def __init__(self, py_func, py_file: str):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno

    def ensure_cache_path(self) -> None:
        if LOCATION.writable:
            _writable(LOCATION.path)  # a failed write is reported by the cache file's save

    def get_cache_path(self) -> str:
        return str(LOCATION.path if LOCATION.path is not None else KERNELS_DIR / "__pycache__")

    def get_source_stamp(self):
        return STAMP

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file: str):
        try:
            if KERNELS_DIR not in Path(py_file).resolve().parents:
                return None
        except (OSError, ValueError):
            return None
        return cls(py_func, py_file)


def _cache_file(cache_path, filename_base, source_stamp):
    """Numba's ``IndexDataCacheFile`` for every function but ours (recognised by their stamp)."""
    if source_stamp is not STAMP and source_stamp != STAMP:
        return _numba_cache_file(cache_path, filename_base, source_stamp)
    cls = _CheckedCacheFile if LOCATION.path is not None else _NoCacheFile
    return cls(cache_path, filename_base, source_stamp)


def install() -> None:
    """Put the locator and the checked cache file in front of Numba's (idempotent)."""
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # renamed in Numba 0.6x
    locators = impl._locator_classes
    if KernelCacheLocator not in locators:
        locators.insert(0, KernelCacheLocator)
    caching.IndexDataCacheFile = _cache_file


@contextmanager
def jit_enabled() -> Iterator[None]:
    """Compile (not interpret) inside this block even under ``NUMBA_DISABLE_JIT=1``."""
    if not config.DISABLE_JIT:
        yield
        return
    config.DISABLE_JIT = 0
    try:
        yield
    finally:
        config.DISABLE_JIT = 1


# What each entry point serves, and rough guesses of a first compile's seconds for the notice:
# the first compile in a process also builds the callees the entry points share.
_SERVES = {"advance_at": "Session.step", "advance_at_shared": "Session.step (threads=2)", "advance": "Model.run", "pool_advance": "SessionPool.step",
           "pool_validate": "SessionPool.step (threads)", "pool_compute": "SessionPool.step (threads)",
           "helper_loop": "Session(threads=2)", "wake_helper": "Session(threads=2)",
           "advance_shared": "Session.run (threads=2)"}
_GUESS_FIRST = {"advance_at": 20, "advance_at_shared": 25, "advance": 20, "advance_shared": 25, "pool_advance": 20,
                "pool_compute": 20}
_GUESS_LATER = {"advance_at": 15, "advance_at_shared": 15, "advance": 3, "advance_shared": 10, "pool_advance": 15,
                "pool_compute": 15}
_compiled_before = False


def _guess_seconds(name: str) -> int:
    return (_GUESS_LATER if _compiled_before else _GUESS_FIRST).get(name, 5)


def _dtype_of(sig: tuple) -> str:
    for t in sig:
        if isinstance(t, types.Array) and isinstance(t.dtype, types.Float):
            return f"{t.dtype} "
    return ""


class _CompileNotice(event.Listener):
    """Announces the first real compile (not a cache load) inside one ``entry_point`` call."""

    def __init__(self, name: str, dtype: str):
        self.name, self.dtype, self.started = name, dtype, None

    def on_start(self, event) -> None:
        if self.started is None:
            self.started = time.perf_counter()
            guess = _guess_seconds(self.name)
            notice(f"compiling {self.dtype}kernels for {_SERVES.get(self.name, self.name)} "
                   f"(first use only, ~{guess} s)")

    def on_end(self, event) -> None:
        pass


@contextmanager
def announced_compile(dispatcher, sig: tuple) -> Iterator[None]:
    """Around ``dispatcher.compile(sig)``: a notice when compiling starts and when it ends (with
    the seconds taken); silent when everything comes from the cache."""
    name = getattr(getattr(dispatcher, "py_func", None), "__name__", "kernels")
    listener = _CompileNotice(name, _dtype_of(sig))
    with jit_enabled(), event.install_listener("numba:compile", listener):
        yield
    if listener.started is not None:
        global _compiled_before
        _compiled_before = True
        notice(f"compiled {listener.dtype}kernels for {_SERVES.get(name, name)} in "
               f"{time.perf_counter() - listener.started:.1f} s")


_numba_cache_file = IndexDataCacheFile
KEY = cache_key(source_digest())
STAMP = ("streamlstm.kernels", KEY)
LOCATION = choose_location(KEY, config.CACHE_DIR)
