"""Train/val/test assignment that depends only on the post's content hash.

The split of a post is a pure function of sha256(text) and the ratios, so the same post lands in
the same split in every version (and on every machine), and a test post can never drift into
training when more gold is added. Changing the ratios would move posts; the freezing service
therefore keeps the split a post had in the parent version when the ratios differ.
"""

from __future__ import annotations

import hashlib
from typing import Mapping

SPLITS = ("train", "val", "test")
# Salt, so the split bucket is independent of anything else derived from the content hash.
_SALT = b"beautybrain-split-v1:"


def normalise_ratios(ratios: Mapping[str, float]) -> dict[str, float]:
    unknown = set(ratios) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; use {SPLITS}")
    values = {s: float(ratios.get(s, 0.0)) for s in SPLITS}
    if any(v < 0 for v in values.values()) or sum(values.values()) <= 0:
        raise ValueError(f"split ratios must be non-negative and not all zero: {dict(ratios)}")
    total = sum(values.values())
    return {s: values[s] / total for s in SPLITS}


def split_bucket(content_hash: str) -> float:
    """A number in [0, 1), uniform over posts, fixed for a given content hash."""
    digest = hashlib.sha256(_SALT + content_hash.encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_for(content_hash: str, ratios: Mapping[str, float]) -> str:
    bucket = split_bucket(content_hash)
    r = normalise_ratios(ratios)
    if bucket < r["train"]:
        return "train"
    if bucket < r["train"] + r["val"]:
        return "val"
    return "test"
