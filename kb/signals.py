"""Cache invalidation only: any change to brands, aliases or categories (admin included) rebuilds the link
index. Its entries carry category slugs, and the span editor keeps the categories with it."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from kb.index import bump_index_version
from kb.models import Brand, BrandAlias, Category


@receiver([post_save, post_delete], sender=Brand)
@receiver([post_save, post_delete], sender=BrandAlias)
@receiver([post_save, post_delete], sender=Category)
def _kb_changed(**kwargs) -> None:
    transaction.on_commit(bump_index_version)
