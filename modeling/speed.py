"""Latency and throughput of any predictor (`predict(list[str]) -> list[dict]`). Django-free."""

from __future__ import annotations

import statistics
import time


def measure_speed(predict, texts: list[str], *, single: int = 50, batch: int = 32, repeats: int = 1) -> dict:
    """Latency p50/p95 at batch 1 (over `single` posts) and throughput at batch `batch` (posts/s over all
    texts; the median of `repeats` passes)."""
    if not texts:
        return {"latency_ms_p50": None, "latency_ms_p95": None, "throughput_posts_s": None}
    single = min(single, max(10, len(texts)))  # a tiny test split is not timed 50 times over
    sample = (list(texts) * (single // len(texts) + 1))[:single]
    predict(sample[:2])  # warm-up: lazy loading and first-call allocations are not latency
    lat = []
    for text in sample:
        t = time.perf_counter()
        predict([text])
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    elapsed = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        for i in range(0, len(texts), batch):
            predict(list(texts[i:i + batch]))
        elapsed.append(time.perf_counter() - t)
    median = statistics.median(elapsed)
    return {"latency_ms_p50": round(statistics.median(lat), 3),
            "latency_ms_p95": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3),
            "throughput_posts_s": round(len(texts) / median, 2) if median > 0 else None}
