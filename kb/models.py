from django.db import models

from kb.rules import CATEGORY_SLUGS  # noqa: F401 - re-exported: the KB's categories are the shared list


class Category(models.Model):
    slug = models.SlugField(unique=True, max_length=32)
    name = models.CharField(max_length=64)
    position = models.PositiveSmallIntegerField(default=0, help_text="Order in menus; keys 1–8 in the editor.")

    class Meta:
        ordering = ["position", "slug"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Brand(models.Model):
    canonical_name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=220, unique=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="brands")
    parent_company = models.CharField(max_length=200, blank=True)
    country = models.CharField(max_length=64, blank=True)
    # Also a common word or a non-beauty name (Fresh, Simple, Dove, Prada): linked only with evidence.
    is_ambiguous = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    source = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["canonical_name"]

    def __str__(self) -> str:
        return self.canonical_name


class BrandAlias(models.Model):
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="aliases")
    alias = models.CharField(max_length=200)
    # kb.linking.normalize(alias); unique, so one written form never names two brands.
    normalized = models.CharField(max_length=200, unique=True)
    # Provenance as given by the source, e.g. "src:obf_beauty_taxonomy+text:sephora_website".
    origin = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["alias"]
        verbose_name_plural = "brand aliases"

    def __str__(self) -> str:
        return f"{self.alias} → {self.brand}"


class AliasRejection(models.Model):
    """An admin said this written form is not another name of this brand: never proposed again."""

    normalized = models.CharField(max_length=200)
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="rejected_aliases")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["normalized", "brand"], name="alias_rejection_once")]

    def __str__(self) -> str:
        return f"{self.normalized} ≠ {self.brand}"
