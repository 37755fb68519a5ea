from django.conf import settings
from django.db import models
from django.db.models import Q


class ModelGeneration(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        TRAINING = "training"
        EVALUATING = "evaluating"
        EXPORTING = "exporting"
        READY = "ready"
        PROMOTED = "promoted"
        RETIRED = "retired"
        FAILED = "failed"
        CANCELLED = "cancelled"

    number = models.PositiveIntegerField(unique=True)
    base_model = models.CharField(max_length=300)
    dataset_version = models.ForeignKey("annotation.DatasetVersion", on_delete=models.PROTECT, related_name="generations")
    config = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    stage = models.CharField(max_length=32, blank=True)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    progress = models.FloatField(default=0)
    eta_seconds = models.FloatField(null=True, blank=True)
    # [{"step": n, "loss": x, "stage": "..."}], appended while training.
    loss_history = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    artifact_path = models.CharField(max_length=500, blank=True)
    export_path = models.CharField(max_length=500, blank=True)
    export_metrics = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    task_id = models.CharField(max_length=64, blank=True)
    # The worker training this generation (host:pid) and until when its heartbeat holds the row: a
    # redelivered message waits for the lease to lapse instead of training the same folder twice.
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    resumes = models.PositiveSmallIntegerField(default=0)  # times the sweeper re-sent its training
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    promotion_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="promoted"), name="at_most_one_promoted")
        ]

    def __str__(self) -> str:
        return f"gen-{self.number}"


class ExportState(models.TextChoices):
    """ModelGeneration.export_metrics["state"]: queued → running → passed | failed (the gate) | error."""
    QUEUED = "queued"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"


class PrelabelRun(models.Model):
    """One pre-labelling request (command, admin action or page) and its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        STOPPED = "stopped"

    source = models.CharField(max_length=16)
    model_version = models.CharField(max_length=120, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    ok = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    # The posts it must label, so the sweeper can resend what is left when a chunk's message was lost.
    post_ids = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)  # the sweeper's heartbeat (every count sets it)
    resumes = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class FlywheelTick(models.Model):
    """One turn of the retraining policy (beat, command or page): what it decided, why, and how it ended."""

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"

    class Outcome(models.TextChoices):
        SKIPPED = "skipped"  # the policy said not yet; `reason` says why
        PROMOTED = "promoted"
        KEPT = "kept"  # trained and evaluated, the gate refused it; `reason` says why
        FAILED = "failed"  # freeze or training broke; `reason` has the error

    trigger = models.CharField(max_length=16, default="beat")  # beat | command
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    reason = models.TextField(blank=True)
    new_gold = models.PositiveIntegerField(default=0)
    dataset_version = models.ForeignKey("annotation.DatasetVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    generation = models.ForeignKey(ModelGeneration, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="flywheel_ticks")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # Two ticks at once (beat and a command) would freeze and train twice: the database refuses it.
            models.UniqueConstraint(fields=["status"], condition=Q(status="running"), name="one_running_flywheel_tick")
        ]

    def __str__(self) -> str:
        return f"tick {self.pk}: {self.outcome or self.status}"


class ShadowRelease(models.Model):
    """A candidate generation labelling a sample of incoming posts beside the promoted one, before promotion."""

    candidate = models.ForeignKey(ModelGeneration, on_delete=models.CASCADE, related_name="shadow_releases")
    baseline = models.ForeignKey(ModelGeneration, on_delete=models.CASCADE, related_name="+")
    sample_share = models.FloatField()
    active = models.BooleanField(default=True)
    started_at = models.DateTimeField(auto_now_add=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["active"], condition=Q(active=True), name="one_active_shadow")]

    def __str__(self) -> str:
        return f"gen-{self.candidate.number} shadowing gen-{self.baseline.number}"


class ShadowPrediction(models.Model):
    """The candidate's labels of one sampled post; kept apart from Prediction so the editor and the work
    queue only ever see the promoted generation's suggestions."""

    release = models.ForeignKey(ShadowRelease, on_delete=models.CASCADE, related_name="predictions")
    post = models.ForeignKey("annotation.Post", on_delete=models.CASCADE, related_name="+")
    spans = models.JSONField(default=list)
    is_beauty = models.BooleanField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["release", "post"], name="one_shadow_prediction_per_post")]
