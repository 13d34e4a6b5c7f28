"""Rendezvous (highest-random-weight) hashing of stream keys onto shard numbers.

A key goes to the shard with the highest score ``hash(shard, key)``. Growing from N to M
shards moves only the keys whose new top scorer is one of the added shards (about
(M - N) / M of them); shrinking moves only the keys of the removed shards.
"""

from __future__ import annotations

import hashlib

import numpy as np


def key_tag(key) -> bytes:
    """A stable byte form of a stream key (str or int, never bool); TypeError for others."""
    if isinstance(key, str):
        return b"s:" + key.encode("utf-8", "surrogatepass")
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        return b"i:" + str(int(key)).encode()
    raise TypeError(f"stream key: expected a str or int, got {type(key).__name__}")


def normal_key(key):
    """The key as the cluster stores it: str stays str, numpy ints become int."""
    if key.__class__ is str or key.__class__ is int:
        return key
    key_tag(key)
    return str(key) if isinstance(key, str) else int(key)


def _score(shard: int, tag: bytes) -> int:
    h = hashlib.blake2b(tag, digest_size=8, key=shard.to_bytes(8, "little"))
    return int.from_bytes(h.digest(), "little")


def owner(key, shards: int) -> int:
    """The shard number in ``range(shards)`` that owns ``key``."""
    tag = key_tag(key)
    return max(range(shards), key=lambda s: _score(s, tag))
