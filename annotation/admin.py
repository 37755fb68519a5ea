from django.contrib import admin

from annotation.models import (
    Annotation, Assignment, DatasetItem, DatasetVersion, ImportBatch, Post, Prediction, Repost, Span,
)


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = ["id", "filename", "format", "status", "posts_created", "reposts_created", "posts_duplicate", "gold_created",
                    "error_count", "created_by", "created_at"]
    list_filter = ["status", "format"]
    readonly_fields = [f.name for f in ImportBatch._meta.fields]
    actions: list = []  # modeling/admin.py adds the pre-label actions (annotation knows no models)


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["id", "platform", "external_id", "short_text", "posted_at", "import_batch"]
    list_filter = ["platform", "lang"]
    search_fields = ["text", "external_id", "author"]
    readonly_fields = ["content_hash", "import_batch", "created_at"]
    date_hierarchy = "posted_at"
    actions: list = []  # modeling/admin.py adds the pre-label actions (annotation knows no models)

    @admin.display(description="text")
    def short_text(self, obj):
        return obj.text[:90] + ("…" if len(obj.text) > 90 else "")


@admin.register(Repost)
class RepostAdmin(admin.ModelAdmin):
    list_display = ["id", "platform", "external_id", "post", "posted_at", "import_batch"]
    list_filter = ["platform"]
    search_fields = ["external_id", "author"]
    raw_id_fields = ["post", "import_batch"]
    readonly_fields = ["created_at"]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["id", "post", "source", "model_version", "prompt_version", "status", "brand_count", "cost_usd",
                    "latency_ms", "created_at"]
    list_filter = ["source", "status", "model_version"]
    search_fields = ["post__text", "status_reason"]
    raw_id_fields = ["post"]
    list_select_related = ["post"]


class SpanInline(admin.TabularInline):
    model = Span
    extra = 0
    raw_id_fields = ["brand"]
    fields = ["start", "end", "text", "brand", "brand_text", "category", "suggested_by"]


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["id", "post", "annotator", "status", "is_gold", "origin", "is_beauty", "version", "updated_at"]
    list_filter = ["status", "is_gold", "origin"]
    raw_id_fields = ["post"]
    list_select_related = ["post", "annotator"]
    inlines = [SpanInline]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["post", "annotator", "assigned_at", "expires_at", "completed_at"]
    raw_id_fields = ["post"]


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ["number", "status", "note", "created_by", "frozen_at", "sha256"]
    readonly_fields = [f.name for f in DatasetVersion._meta.fields]

    def has_delete_permission(self, request, obj=None):
        return False  # frozen versions are immutable; generations point at them


@admin.register(DatasetItem)
class DatasetItemAdmin(admin.ModelAdmin):
    list_display = ["version", "post", "split", "kind"]
    list_filter = ["version", "split", "kind"]
    readonly_fields = [f.name for f in DatasetItem._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
