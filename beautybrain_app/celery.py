import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beautybrain_app.settings")

app = Celery("beautybrain")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("default", "teacher", "student", "gpu")]
app.autodiscover_tasks()


@app.task(name="beautybrain.ping")
def ping() -> str:
    """Round trip through broker, worker and result backend; used by tests and /healthz."""
    return "pong"
