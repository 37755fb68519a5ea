from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_delete, post_migrate, post_save


class AnnotationConfig(AppConfig):
    name = "annotation"

    def ready(self) -> None:
        from kb.models import Category

        post_migrate.connect(_ensure_roles, sender=self)
        # The editor keeps the categories with the KB link index (annotation.services.editor), so a
        # category change must rebuild it like a brand change does (kb.signals).
        post_save.connect(_category_changed, sender=Category, dispatch_uid="annotation-category-saved")
        post_delete.connect(_category_changed, sender=Category, dispatch_uid="annotation-category-deleted")


def _ensure_roles(**kwargs) -> None:
    from annotation.roles import roles_ensure

    roles_ensure()


def _category_changed(**kwargs) -> None:
    from kb.linking import bump_index_version

    transaction.on_commit(bump_index_version)
