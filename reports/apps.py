from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """Analyst reports over brand mentions: the top layer, reading annotation's gold and modeling's generations."""

    name = "reports"
