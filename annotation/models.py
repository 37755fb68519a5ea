from django.conf import settings
from django.db import models
from django.db.models import F, Q


class ImportBatch(models.Model):
    class Format(models.TextChoices):
        JSONL = "jsonl", "JSONL"
        CSV = "csv", "CSV"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    filename = models.CharField(max_length=255)
    format = models.CharField(max_length=8, choices=Format.choices)
    stored_path = models.CharField(max_length=500, blank=True, help_text="Upload kept until imported.")
    size_bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    bytes_read = models.BigIntegerField(default=0)
    lines_read = models.PositiveIntegerField(default=0)
    posts_created = models.PositiveIntegerField(default=0)
    posts_duplicate = models.PositiveIntegerField(default=0)
    reposts_created = models.PositiveIntegerField(default=0)  # a stored text under another (platform, id)
    gold_created = models.PositiveIntegerField(default=0)
    spans_created = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    # [{"line": 7, "error": "..."}], capped (see annotation.importing.MAX_STORED_ERRORS).
    errors = models.JSONField(default=list, blank=True)
    failure = models.TextField(blank=True)
    # The heartbeat the sweeper reads (every chunk saves the batch) and how often it resumed this batch.
    updated_at = models.DateTimeField(auto_now=True)
    resumes = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "import batches"

    def __str__(self) -> str:
        return f"#{self.pk} {self.filename}"

    @property
    def progress(self) -> float:
        return min(1.0, self.bytes_read / self.size_bytes) if self.size_bytes else 0.0


class Post(models.Model):
    platform = models.CharField(max_length=32, blank=True, db_index=True)
    external_id = models.CharField(max_length=200, blank=True, db_index=True)
    author = models.CharField(max_length=200, blank=True)
    posted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    text = models.TextField()
    lang = models.CharField(max_length=16, blank=True)
    url = models.URLField(max_length=1000, blank=True)
    source = models.CharField(max_length=200, blank=True)
    # sha256 of the exact text (annotation.importing.content_hash): a re-import never duplicates.
    content_hash = models.CharField(max_length=64, unique=True)
    import_batch = models.ForeignKey(ImportBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="posts")
    created_at = models.DateTimeField(auto_now_add=True)
    # Work-queue order, highest first (annotation.services.queue.post_priority_refresh): sources that
    # disagree, then an unsure student, then posts nobody has pre-labelled (0).
    priority = models.FloatField(default=0)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["-priority", "id"], name="post_queue_order")]

    def __str__(self) -> str:
        return f"{self.platform}:{self.external_id or self.pk}"


class Repost(models.Model):
    """Another (platform, id) carrying the exact text of a stored post: a repost, a cross-post, a pasted
    giveaway text. The text is annotated and labelled once, on `post`; reports count every copy as volume,
    with its own platform and date. Each (platform, id) is stored once, as a Post or as a Repost."""

    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="reposts")
    platform = models.CharField(max_length=32, blank=True)
    external_id = models.CharField(max_length=200)
    author = models.CharField(max_length=200, blank=True)
    posted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    url = models.URLField(max_length=1000, blank=True)
    import_batch = models.ForeignKey(ImportBatch, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="reposts")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["post_id", "id"]
        constraints = [models.UniqueConstraint(fields=["platform", "external_id"], name="repost_platform_id_once")]

    def __str__(self) -> str:
        return f"{self.platform}:{self.external_id} (repost of {self.post_id})"


class Prediction(models.Model):
    class Source(models.TextChoices):
        TEACHER = "teacher"
        STUDENT = "student"
        GAZETTEER = "gazetteer"

    class Status(models.TextChoices):
        OK = "ok"
        INVALID = "invalid"
        REFUSED = "refused"
        ERROR = "error"

    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="predictions")
    source = models.CharField(max_length=16, choices=Source.choices)
    model_version = models.CharField(max_length=120)
    prompt_version = models.CharField(max_length=32, blank=True)
    # [{"start", "end", "text", "brand" (canonical or null), "brand_id", "category", "confidence"}]
    spans = models.JSONField(default=list, blank=True)
    is_beauty = models.BooleanField(null=True)
    brand_count = models.PositiveSmallIntegerField(null=True, blank=True)
    reasoning = models.TextField(blank=True)
    confidence = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OK, db_index=True)
    status_reason = models.TextField(blank=True)
    raw_response = models.TextField(blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=8, default=0)
    latency_ms = models.FloatField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["post", "source", "model_version", "prompt_version"], name="prediction_once_per_model"
            )
        ]
        indexes = [models.Index(fields=["source", "status"])]

    def __str__(self) -> str:
        return f"{self.source}:{self.model_version} on {self.post_id} ({self.status})"


class Assignment(models.Model):
    """A post handed to an annotator by the work queue; expires if abandoned."""

    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    assigned_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["post", "annotator"], name="assignment_once_per_annotator")]


class Annotation(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        SUBMITTED = "submitted"
        ACCEPTED = "accepted"
        REJECTED = "rejected"

    class Origin(models.TextChoices):
        EDITOR = "editor"
        IMPORT = "import"
        REVIEW = "review"

    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.EDITOR)
    # The one annotation per post that datasets take (imported gold, or a reviewer's adjudication).
    is_gold = models.BooleanField(default=False)
    is_beauty = models.BooleanField(null=True)
    no_brands = models.BooleanField(default=False)
    # Optimistic locking: every write says which version it saw; a stale version is a conflict.
    version = models.PositiveIntegerField(default=1)
    # Seconds of editing, and how many suggestions were taken unchanged (progress statistics).
    active_seconds = models.FloatField(default=0)
    suggestions_accepted = models.PositiveIntegerField(default=0)
    # Suggestions the annotator dismissed ("source:start:end"), and the inverse of recent edits (undo).
    dismissed = models.JSONField(default=list, blank=True)
    undo_log = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["post"], condition=Q(is_gold=True), name="one_gold_per_post"),
            models.UniqueConstraint(
                fields=["post", "annotator"], condition=Q(is_gold=False), name="one_annotation_per_annotator"
            ),
        ]
        indexes = [models.Index(fields=["is_gold", "post"])]

    def __str__(self) -> str:
        return f"annotation {self.pk} of post {self.post_id} by {self.annotator_id}"


class Span(models.Model):
    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="spans")
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    text = models.CharField(max_length=500)
    # Null = an unlinked mention: a brand not (yet) in the KB; admins see these as candidates.
    brand = models.ForeignKey("kb.Brand", null=True, blank=True, on_delete=models.SET_NULL, related_name="spans")
    brand_text = models.CharField(max_length=200, blank=True, help_text="Canonical name as given when unlinked.")
    category = models.ForeignKey("kb.Category", null=True, blank=True, on_delete=models.PROTECT)
    suggested_by = models.CharField(max_length=140, blank=True, help_text="source:model_version when accepted from a suggestion.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["start", "end"]
        constraints = [
            models.CheckConstraint(condition=Q(start__lt=F("end")), name="span_start_before_end"),
            models.UniqueConstraint(fields=["annotation", "start", "end"], name="span_once_per_annotation"),
        ]

    def __str__(self) -> str:
        return f"{self.text} [{self.start}:{self.end}]"


class DatasetVersionFrozen(Exception):
    """A frozen dataset version, or one of its items, was about to change."""


# A frozen version is evidence (models were trained and evaluated on it), so its rows refuse every
# ORM write path here, in the models, rather than trusting each caller: save(), delete(), and the
# queryset's update()/delete()/bulk_create() (bulk_update goes through update()). Raw SQL is not covered.
class DatasetVersionQuerySet(models.QuerySet):
    def update(self, **kwargs):
        _refuse_if_frozen(self.filter(status=DatasetVersion.Status.FROZEN).exists())
        return super().update(**kwargs)

    def delete(self):
        _refuse_if_frozen(self.filter(status=DatasetVersion.Status.FROZEN).exists())
        return super().delete()

    def bulk_update(self, objs, *args, **kwargs):
        objs = list(objs)
        _refuse_if_frozen(self.filter(pk__in=[o.pk for o in objs], status=DatasetVersion.Status.FROZEN).exists())
        return super().bulk_update(objs, *args, **kwargs)


def _refuse_if_frozen(frozen: bool) -> None:
    if frozen:
        raise DatasetVersionFrozen("A frozen dataset version never changes; freeze a new version instead.")


class DatasetVersion(models.Model):
    class Status(models.TextChoices):
        FREEZING = "freezing"
        FROZEN = "frozen"
        FAILED = "failed"

    number = models.PositiveIntegerField(unique=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    note = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.FREEZING)
    created_at = models.DateTimeField(auto_now_add=True)
    frozen_at = models.DateTimeField(null=True, blank=True)
    split_ratios = models.JSONField(default=dict)
    sha256 = models.CharField(max_length=64, blank=True)
    # {"train": {"gold": n, "silver": n, "spans": n, "beauty": n}, ...}, category distribution, etc.
    counts = models.JSONField(default=dict, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)  # the sweeper's heartbeat (progress writes set it)
    resumes = models.PositiveSmallIntegerField(default=0)

    objects = DatasetVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"v{self.number}"

    def _frozen_in_db(self) -> bool:
        return self.pk is not None and DatasetVersion.objects.filter(pk=self.pk, status=self.Status.FROZEN).exists()

    def save(self, *args, **kwargs):
        _refuse_if_frozen(self._frozen_in_db())
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        _refuse_if_frozen(self._frozen_in_db())
        return super().delete(*args, **kwargs)


class DatasetItemQuerySet(models.QuerySet):
    def update(self, **kwargs):
        _refuse_if_frozen(self.filter(version__status=DatasetVersion.Status.FROZEN).exists())
        return super().update(**kwargs)

    def delete(self):
        _refuse_if_frozen(self.filter(version__status=DatasetVersion.Status.FROZEN).exists())
        return super().delete()

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        version_ids = {o.version_id for o in objs}
        _refuse_if_frozen(DatasetVersion.objects.filter(pk__in=version_ids, status=DatasetVersion.Status.FROZEN).exists())
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs, *args, **kwargs):
        # Checked before Django opens its atomic block, so the refusal leaves the caller's transaction usable.
        objs = list(objs)
        version_ids = {o.version_id for o in objs}
        _refuse_if_frozen(DatasetVersion.objects.filter(pk__in=version_ids, status=DatasetVersion.Status.FROZEN).exists())
        return super().bulk_update(objs, *args, **kwargs)


class DatasetItem(models.Model):
    class Split(models.TextChoices):
        TRAIN = "train"
        VAL = "val"
        TEST = "test"

    class Kind(models.TextChoices):
        GOLD = "gold"
        SILVER = "silver"

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="items")
    post = models.ForeignKey(Post, on_delete=models.PROTECT, related_name="dataset_items")
    split = models.CharField(max_length=8, choices=Split.choices)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.GOLD)
    # Snapshot: the text and labels as they were at freezing, so a version never changes.
    text = models.TextField()
    is_beauty = models.BooleanField(null=True)
    spans = models.JSONField(default=list)
    # For silver items: which teacher produced them.
    teacher_model = models.CharField(max_length=120, blank=True)
    prompt_version = models.CharField(max_length=32, blank=True)
    reasoning = models.TextField(blank=True)
    # The post's identity as exported, snapshotted too: editing a post later must not change a version.
    external_id = models.CharField(max_length=200, blank=True)
    platform = models.CharField(max_length=32, blank=True)
    posted_at = models.DateTimeField(null=True, blank=True)

    objects = DatasetItemQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["version", "post"], name="dataset_item_once_per_version")]
        indexes = [models.Index(fields=["version", "split", "kind"])]

    def _version_frozen(self) -> bool:
        return DatasetVersion.objects.filter(pk=self.version_id, status=DatasetVersion.Status.FROZEN).exists()

    def save(self, *args, **kwargs):
        _refuse_if_frozen(self._version_frozen())
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        _refuse_if_frozen(self._version_frozen())
        return super().delete(*args, **kwargs)
