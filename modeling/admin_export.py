"""Admin action and column for exports (attached to ModelGenerationAdmin in modeling/admin.py)."""

from django.contrib import admin, messages

from modeling.services.export import ExportRefused, generation_export_enqueue


@admin.action(description="Export (quantise, evaluate, gate) on the gpu queue")
def export_generations(modeladmin, request, queryset):
    queued = []
    for generation in queryset:
        try:
            generation_export_enqueue(generation=generation, force=True)
            queued.append(f"gen-{generation.number}")
        except ExportRefused as exc:
            modeladmin.message_user(request, str(exc), level=messages.ERROR)
    if queued:
        modeladmin.message_user(request, f"Export queued: {', '.join(queued)}.", level=messages.SUCCESS)


@admin.display(description="export")
def export_state(generation) -> str:
    metrics = generation.export_metrics or {}
    state = metrics.get("state")
    if not state:
        return "—"
    drop = metrics.get("span_f1_drop")
    figures = f", span F1 {-drop * 100:+.1f} pts, {metrics.get('speedup')}× posts/s" if drop is not None else ""
    return f"{metrics.get('format') or ''} {state}{figures}".strip()
