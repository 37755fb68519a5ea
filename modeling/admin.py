from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from annotation.admin import ImportBatchAdmin, PostAdmin
from modeling.admin_actions import PRELABEL_ACTIONS
from modeling.admin_export import export_generations, export_state
from modeling.models import ModelGeneration, PrelabelRun

# Pre-label the selected posts (or the posts of the selected imports) from their changelists.
ImportBatchAdmin.actions = [*ImportBatchAdmin.actions, *PRELABEL_ACTIONS]
PostAdmin.actions = [*PostAdmin.actions, *PRELABEL_ACTIONS]


@admin.register(PrelabelRun)
class PrelabelRunAdmin(admin.ModelAdmin):
    list_display = ["id", "source", "model_version", "status", "progress", "ok", "failed", "skipped", "created_by",
                    "created_at", "page"]
    list_filter = ["source", "status"]
    readonly_fields = [f.name for f in PrelabelRun._meta.fields]

    @admin.display(description="done")
    def progress(self, obj):
        return f"{obj.done}/{obj.total}"

    @admin.display(description="progress page")
    def page(self, obj):
        return format_html('<a href="{}">follow</a>', reverse("prelabel_run", args=[obj.pk]))


@admin.register(ModelGeneration)
class ModelGenerationAdmin(admin.ModelAdmin):
    list_display = ["number", "base_model", "dataset_version", "status", "stage", "progress", export_state, "created_at",
                    "promoted_at"]
    list_filter = ["status"]
    actions = [export_generations]
    readonly_fields = ["created_at", "started_at", "finished_at", "promoted_at"]
