"""Cascade: span F1 and teacher calls at each teacher share, on held-out gold posts, teacher via the local endpoint.

    python bench/cascade.py --artifact var/models/gen-1 [--answers teacher_answers.jsonl] [--threads 2]

The student is a trained generation. Posts: data/demo/gold_seed.jsonl split as the app splits it (hash of
the content hash): the calibrator of P(error) is fitted on the val split, the cascade is measured on the
test split, which no generation trains on. The teacher is the real google-genai client against the local
Gemini-compatible endpoint, replaying `--answers` (teacher contract, matched by post text); without it,
answers written from the gold labels (a teacher that is always right: the gap measured is then the
student's whole distance to gold). Baselines in the same run: random routing and raw-softmax routing
(1 − the least span confidence) at the same shares. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from pathlib import Path

from student_common import DEMO, demo_index, newest_artifact

from modeling import cascade
from modeling.student.demo import read_jsonl


def app_split(text: str) -> str:
    from annotation.datasets.splits import split_for

    # The app's content hash (annotation.services.importing.content_hash) of the exact text.
    return split_for(hashlib.sha256(text.encode("utf-8")).hexdigest(), {"train": 0.8, "val": 0.1, "test": 0.1})


def gold_answers(rows: list[dict]) -> dict[str, dict]:
    return {r["text"]: {"is_beauty": bool(r.get("is_beauty")), "reasoning": "gold",
                        "mentions": [{"text": b["text"], "brand": b.get("brand") or b["text"],
                                      "category": b.get("category") or "other"} for b in r.get("brands") or []]}
            for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifact", default="", help="a generation's directory (default: newest under var/models)")
    parser.add_argument("--gold", default=str(DEMO / "gold_seed.jsonl"))
    parser.add_argument("--answers", default="", help="teacher answers (JSONL, teacher contract + `text` or posts file)")
    parser.add_argument("--posts", default="", help="posts file the answers' ids refer to (if they carry no text)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from modeling.metrics import evaluate
    from modeling.student.predict import StudentPredictor
    from modeling.teacher.align import align_mentions
    from modeling.teacher.client import TeacherClient, TeacherConfig
    from modeling.teacher.fake_server import FakeGemini, load_replay, serve

    artifact = newest_artifact(args.artifact)
    rows = read_jsonl(Path(args.gold))
    val = [r for r in rows if app_split(r["text"]) == "val"]
    test = [r for r in rows if app_split(r["text"]) == "test"]
    answers = (load_replay(Path(args.answers), Path(args.posts) if args.posts else None) if args.answers
               else gold_answers(test))
    student = StudentPredictor.load(artifact)
    index = demo_index()

    def student_outputs(subset):
        texts = [r["text"] for r in subset]
        preds = student.predict(texts)
        return preds, cascade.post_features(student, texts, preds)

    val_preds, val_x = student_outputs(val)
    val_errors = [cascade.any_error(p, g) for p, g in zip(val_preds, val)]
    calibrator = cascade.Calibrator().fit(val_x, val_errors)
    test_preds, test_x = student_outputs(test)
    p_error = calibrator.p_error(test_x)
    test_errors = [cascade.any_error(p, g) for p, g in zip(test_preds, test)]
    raw = [1 - min((float(b.get("confidence") or 0) for b in p["brands"]), default=float(p.get("beauty_score", 0.5)))
           for p in test_preds]
    rand = [random.Random(i).random() for i in range(len(test))]

    fake = FakeGemini(answers_by_text=answers)
    server = serve(fake)
    client = TeacherClient(TeacherConfig(api_key="local-endpoint-key", model="gemini-2.5-flash", max_attempts=2,
                                         initial_delay_s=0.01, base_url=f"http://127.0.0.1:{server.server_address[1]}"))
    asked: dict[int, dict | None] = {}

    def teacher_answer(i: int) -> dict | None:
        """One real SDK call per post, cached across shares (a post is never paid twice)."""
        if i not in asked:
            reply = client.label(test[i]["text"])
            asked[i] = None
            if reply.status == "ok":
                try:
                    aligned = align_mentions(test[i]["text"], [m["text"] for m in reply.answer["mentions"]],
                                             [m["brand"] for m in reply.answer["mentions"]])
                except ValueError:
                    aligned = None
                if aligned is not None:
                    brands = []
                    for a, m in zip(aligned, reply.answer["mentions"]):
                        entry = index.resolve(a.text, context=test[i]["text"], hint=m["brand"]).brand
                        brands.append({"start": a.start, "end": a.end, "text": a.text, "category": m["category"],
                                       "brand": entry.canonical_name if entry else m["brand"]})
                    asked[i] = {"is_beauty": reply.answer["is_beauty"], "brands": brands}
        return asked[i]

    def run(scores) -> list[dict]:
        out = []
        for share in cascade.SHARES:
            chosen = cascade.route(scores, share)
            merged = cascade.combine(test_preds, {i: teacher_answer(i) for i in chosen}, chosen)
            f = evaluate(test, merged)
            out.append({"share": share, "teacher_calls": len(chosen), "span_f1": round(f["span_f1"], 4),
                        "brand_em": round(f["brand_em"], 4)})
        return out

    calibrated, by_raw, by_random = run(p_error), run(raw), run(rand)
    stats = fake.stats()
    server.shutdown()
    figures = {
        "artifact": artifact, "val_posts": len(val), "test_posts": len(test),
        "teacher_answers": args.answers or "gold-derived", "teacher_http_requests": stats["requests"],
        "student_span_f1": calibrated[0]["span_f1"], "teacher_span_f1": calibrated[-1]["span_f1"],
        "calibration_test": cascade.calibration_figures(p_error, test_errors),
        "test_error_rate": round(sum(test_errors) / max(1, len(test)), 4),
        "cascade": calibrated, "raw_softmax": by_raw, "random": by_random,
        "gap_closed_at_20": cascade.gap_closed(calibrated, 0.2),
        "gap_closed_at_20_raw_softmax": cascade.gap_closed(by_raw, 0.2),
        "gap_closed_at_20_random": cascade.gap_closed(by_random, 0.2),
        "teacher_share_at_20": round(calibrated[3]["teacher_calls"] / max(1, len(test)), 4),
    }
    for r in calibrated:
        print(f"share {r['share']:>4.0%}: span F1 {r['span_f1']:.4f}  teacher calls {r['teacher_calls']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
