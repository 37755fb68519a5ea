"""Read queries of the modeling app (generations)."""

from __future__ import annotations

from annotation.models import DatasetVersion
from modeling.charts import line_chart
from modeling.models import ModelGeneration

METRICS_CHARTED = ("span_f1", "brand_em", "beauty_f1", "category_accuracy")


def generations_list():
    return ModelGeneration.objects.select_related("dataset_version", "created_by").order_by("-number")


def frozen_dataset_versions():
    return DatasetVersion.objects.filter(status=DatasetVersion.Status.FROZEN).order_by("-number")


def generations_metrics_chart(generations) -> str:
    """Test metrics of each evaluated generation, and the gazetteer's span F1 on the same test split."""
    series: dict[str, list[tuple[float, float]]] = {}
    for g in generations:
        student = (g.metrics or {}).get("student") or {}
        for key in METRICS_CHARTED:
            if isinstance(student.get(key), (int, float)):
                series.setdefault(key, []).append((g.number, float(student[key])))
        gaz = (g.metrics or {}).get("gazetteer") or {}
        if isinstance(gaz.get("span_f1"), (int, float)):
            series.setdefault("gazetteer span_f1", []).append((g.number, float(gaz["span_f1"])))
    return line_chart(series, y_min=0.0, y_max=1.0, x_label="generation", title="Test metrics by generation")


def generation_loss_chart(generation: ModelGeneration) -> str:
    points = [(float(h["step"]), float(h["loss"])) for h in generation.loss_history or [] if h.get("loss") is not None]
    return line_chart({"training loss": points}, y_min=0.0, x_label="step", title="Training loss")


def generation_comparison(generation: ModelGeneration) -> tuple[list[str], list[dict]]:
    """Rows (metric) × columns (this generation, promoted, gazetteer, teacher) for the side-by-side table."""
    metrics = generation.metrics or {}
    columns = [c for c in ("student", "promoted", "gazetteer", "teacher") if c in metrics]
    keys = ["span_f1", "span_precision", "span_recall", "brand_em", "category_accuracy", "beauty_f1",
            "brand_count_accuracy", "count_head_accuracy", "latency_ms_p50", "latency_ms_p95", "throughput_posts_s",
            "cost_per_1k_usd"]
    rows = [{"metric": k, "values": [(metrics.get(c) or {}).get(k) for c in columns]} for k in keys]
    # Generalisation: mentions whose form and brand this generation's KB snapshot and training labels lack,
    # then span F1 per platform (social text is where a dictionary falls short).
    for k in ("unseen_mentions", "unseen_recall", "unseen_precision"):
        rows.append({"metric": k.replace("_", " ", 1), "values": [(metrics.get(c) or {}).get(k) for c in columns]})
    platforms = sorted({p for c in columns for p in ((metrics.get(c) or {}).get("per_platform") or {})})
    for platform in platforms:
        cells = [((metrics.get(c) or {}).get("per_platform") or {}).get(platform) or {} for c in columns]
        posts = next((cell["posts"] for cell in cells if cell.get("posts")), 0)
        rows.append({"metric": f"span_f1 · {platform} ({posts} posts)", "values": [cell.get("span_f1") for cell in cells]})
    labels = {"student": f"gen-{generation.number}", "promoted": "promoted", "gazetteer": "gazetteer",
              "teacher": "teacher (stored)"}
    if "promoted" in metrics:
        labels["promoted"] = f"promoted gen-{metrics['promoted'].get('generation')}"
    return [labels[c] for c in columns], rows
