"""Examples from interchange-format files (gold) and teacher answers (silver), without Django.

Used by the benchmarks and by experiments; the app builds the same `Example`s from a frozen dataset."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .text import Example, align_mentions


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def gold_examples(rows: list[dict]) -> list[Example]:
    return [Example(id=str(r.get("id")), text=r["text"], spans=[dict(s) for s in r.get("brands") or []],
                    is_beauty=r.get("is_beauty"), kind="gold", platform=r.get("platform") or "") for r in rows]


def silver_examples(posts: list[dict], answers: list[dict], weight: float) -> list[Example]:
    """Valid teacher answers become silver examples; an answer whose mentions cannot be aligned is dropped."""
    by_id = {a["id"]: a for a in answers}
    out = []
    for post in posts:
        answer = by_id.get(post["id"])
        if answer is None:
            continue
        spans = align_mentions(post["text"], answer.get("mentions") or [])
        if spans is None:
            continue
        out.append(Example(id=str(post["id"]), text=post["text"], spans=spans, is_beauty=answer.get("is_beauty"),
                           kind="silver", weight=weight, reasoning=answer.get("reasoning") or "",
                           platform=post.get("platform") or ""))
    return out


def hash_fold(key: str, k: int) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % k
