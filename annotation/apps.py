from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AnnotationConfig(AppConfig):
    name = "annotation"

    def ready(self) -> None:
        post_migrate.connect(_ensure_roles, sender=self)


def _ensure_roles(**kwargs) -> None:
    from beautybrain_app.roles import roles_ensure

    roles_ensure()
