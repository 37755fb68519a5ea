"""Materialised report aggregates (the "cube"): what the reports page reads instead of every mention.

A mention stream is "gold" (gold annotations) or one generation's predictions ("gen-N"). Each row counts
one UTC day x platform x category x brand key of one stream, split by whether the posts have a gold
annotation (`gold`), so "auto" (gold where present, else the promoted generation) is the gold stream
plus the generation's rows with gold=False. Rows are rebuilt from the streams when the data changes
(reports/cube.py); the reports page answers from them with a few GROUP BYs.
"""

from django.db import models


class CubeCell(models.Model):
    class Kind(models.IntegerChoices):
        BRAND = 0, "brand"  # one brand key in one category
        CATEGORY = 1, "category"  # posts with a mention in the category (key "")
        POSTS = 2, "posts"  # posts with any mention (category "", key "")
        COVERED = 3, "covered"  # posts the stream looked at, with or without mentions (category "", key "")

    stream = models.CharField(max_length=32)
    gold = models.BooleanField()
    kind = models.PositiveSmallIntegerField(choices=Kind.choices)
    # "day" rows count a UTC day; "week" and "month" rows the same counts summed per ISO week / month
    # (day = its first day), so a view over whole buckets reads a tenth of the rows.
    grain = models.CharField(max_length=5, default="day")
    day = models.DateField(null=True)  # null: undated posts (at every grain)
    week = models.DateField(null=True)  # day rows: the day's ISO week (Monday)
    month = models.DateField(null=True)  # day rows: the day's month
    platform = models.CharField(max_length=32, blank=True)
    category = models.CharField(max_length=64, blank=True)  # slug, "" unknown
    key = models.TextField(blank=True)  # "b<brand id>" or "u:<normalised name>" (unlinked)
    mentions = models.PositiveIntegerField(default=0)
    # BRAND: posts naming the key in this category; CATEGORY/POSTS: posts; COVERED: posts (not reposts).
    posts = models.PositiveIntegerField(default=0)
    # BRAND only: posts counted under the first category they name the key in, so that summing over
    # categories counts each post once.
    posts_first = models.PositiveIntegerField(default=0)
    reposts = models.PositiveIntegerField(default=0)  # of `posts`, those that are reposts (copies of a text)
    reposts_first = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["grain", "stream", "kind", "day"], name="reports_cube_grain_day")]


class CubePair(models.Model):
    """Posts naming both keys (key_a < key_b); category null: across categories."""

    stream = models.CharField(max_length=32)
    gold = models.BooleanField()
    grain = models.CharField(max_length=5, default="day")  # "day", or "all": every day summed (day null)
    day = models.DateField(null=True)
    platform = models.CharField(max_length=32, blank=True)
    category = models.CharField(max_length=64, null=True)
    key_a = models.TextField()
    key_b = models.TextField()
    posts = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["grain", "stream", "day"], name="reports_pair_grain_day")]


class CubeLabel(models.Model):
    """The spelling an unlinked key is shown with: the one of its first mention in the stream."""

    stream = models.CharField(max_length=32)
    gold = models.BooleanField()
    key = models.TextField()
    first_post_id = models.BigIntegerField()
    label = models.TextField()


class CubeState(models.Model):
    """One row: which data state the cube holds."""

    fingerprint = models.TextField(blank=True)
    built_at = models.DateTimeField(null=True)
    seconds = models.FloatField(default=0)
    cells = models.PositiveIntegerField(default=0)
    pairs = models.PositiveIntegerField(default=0)
