"""bench/student_unseen.py end to end on a small slice of the demo data: the grouped-by-brand split holds
its brands out of training and the KB, and the figures it prints are the ones the product reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_grouped_by_brand_cv_runs_on_a_small_fixture(tmp_path):
    keep = tmp_path / "fold0"
    done = subprocess.run(
        [sys.executable, "bench/student_unseen.py", "--limit", "60", "--epochs", "0.3", "--only", "0", "--threads", "2",
         "--keep", str(keep)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    fold, summary = lines[0], lines[-1]
    assert fold["holdout"] == "brands" and fold["held_out_brands"] > 0 and fold["test_posts"] > 0
    # No held-out name is left in the fold's KB snapshot or training labels: the split is fair.
    assert fold["held_out_names_still_known"] == []
    from kb.linking import normalize

    known = set(json.loads((keep / "train_labels.json").read_text()))
    kb_keys = {a for row in json.loads((keep / "kb.json").read_text()) for a in row["aliases"]}
    student = fold["student"]
    assert student["unseen_mentions"] > 0 and 0.0 <= (student["unseen_recall"] or 0.0) <= 1.0
    assert fold["gazetteer"]["unseen_found"] == 0  # a dictionary cannot find what it does not hold
    assert {"span_precision", "span_recall", "span_f1", "brand_em", "per_platform"} <= set(student)
    assert set(student["per_platform"]) <= {"reddit", "tiktok", "instagram", "youtube", "twitter", "xiaohongshu", "weibo"}
    assert summary["folds"] == [0] and set(summary["mean"]) == {"student", "gazetteer"}
    sample = fold["held_out_sample"]
    assert sample and not any(normalize(n) in known | kb_keys for n in sample)
