"""Recompute the work-queue priority of posts from their stored predictions.

Pre-labelling refreshes the posts it labels; run this after changing the priority rule, or after
loading predictions by other means.
"""

from django.core.management.base import BaseCommand

from annotation.models import Post
from annotation.services.queue import post_priority_refresh

BATCH = 5000


class Command(BaseCommand):
    help = "Recompute Post.priority (the work-queue order) from the stored predictions."

    def add_arguments(self, parser):
        parser.add_argument("--post", type=int, action="append", dest="posts", help="only this post id (repeatable)")

    def handle(self, *args, posts=None, **options):
        ids = posts or Post.objects.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=BATCH)
        total, batch = 0, []
        for pk in ids:
            batch.append(pk)
            if len(batch) == BATCH:
                total += post_priority_refresh(post_ids=batch)
                batch = []
        if batch:
            total += post_priority_refresh(post_ids=batch)
        self.stdout.write(f"{total} post priorities refreshed")
