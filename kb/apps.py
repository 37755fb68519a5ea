from django.apps import AppConfig


class KbConfig(AppConfig):
    name = "kb"
    verbose_name = "Brand knowledge base"

    def ready(self) -> None:
        from kb import signals  # noqa: F401
