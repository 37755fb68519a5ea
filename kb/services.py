from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import IO, Iterable

from django.db import transaction
from django.utils.text import slugify

from beautybrain_app.csv_cells import cell_safe, cell_unescape
from kb.index import bump_index_version
from kb.linking import normalize
from kb.models import CATEGORY_SLUGS, Brand, BrandAlias, Category

CSV_COLUMNS = [
    "canonical_name", "aliases", "alias_origin", "category", "category_counts", "category_origin",
    "ambiguity_risk", "parent_company", "country", "source",
]


# Longest value each column may hold (the database refuses longer ones; SQLite would not say so).
FIELD_LIMITS = {"canonical_name": 200, "aliases": 200, "alias_origin": 200, "parent_company": 200, "country": 64,
                "source": 200}


class AliasConflict(ValueError):
    """An alias whose normalised form already names another brand."""

    def __init__(self, alias: str, normalized: str, existing: Brand, wanted: Brand):
        self.alias, self.existing, self.wanted = alias, existing, wanted
        super().__init__(
            f"alias {alias!r} (normalised {normalized!r}) already names {existing.canonical_name!r}; "
            f"it cannot also name {wanted.canonical_name!r}"
        )


def categories_ensure() -> dict[str, Category]:
    """The fixed category set, created if missing; returns slug → Category."""
    existing = {c.slug: c for c in Category.objects.all()}
    for position, slug in enumerate(CATEGORY_SLUGS, start=1):
        if slug not in existing:
            existing[slug] = Category.objects.create(slug=slug, name=slug.capitalize(), position=position)
    return existing


@transaction.atomic
def brand_alias_add(*, brand: Brand, alias: str, origin: str = "") -> tuple[BrandAlias | None, bool]:
    """Add an alias → (alias, created). Idempotent for the same brand; AliasConflict if it names another.
    Canonical names are stored as aliases too, so an alias can never shadow another brand's name."""
    key = normalize(alias)
    if not key:
        return None, False
    existing = BrandAlias.objects.select_related("brand").filter(normalized=key).first()
    if existing is not None:
        if existing.brand_id != brand.pk:
            raise AliasConflict(alias, key, existing.brand, brand)
        return existing, False
    created = BrandAlias.objects.create(brand=brand, alias=alias.strip(), normalized=key, origin=origin)
    transaction.on_commit(bump_index_version)
    return created, True


@transaction.atomic
def brand_upsert(
    *,
    canonical_name: str,
    category: Category,
    parent_company: str = "",
    country: str = "",
    is_ambiguous: bool = False,
    source: str = "",
) -> tuple[Brand, bool]:
    canonical_name = canonical_name.strip()
    brand = Brand.objects.filter(canonical_name=canonical_name).first()
    fields = dict(category=category, parent_company=parent_company, country=country,
                  is_ambiguous=is_ambiguous, source=source)
    if brand is None:
        brand = Brand.objects.create(canonical_name=canonical_name, slug=_unique_slug(canonical_name), **fields)
        created = True
    else:
        changed = [k for k, v in fields.items() if getattr(brand, k if k != "category" else "category_id") !=
                   (v.pk if k == "category" else v)]
        for k in changed:
            setattr(brand, k, fields[k])
        if changed:
            brand.save(update_fields=changed + ["updated_at"])
        created = False
    key = normalize(canonical_name)
    if key and not BrandAlias.objects.filter(normalized=key).exists():
        BrandAlias.objects.create(brand=brand, alias=canonical_name, normalized=key, origin="canonical")
    transaction.on_commit(bump_index_version)
    return brand, created


def _unique_slug(name: str) -> str:
    base = slugify(name)[:200] or "brand"
    slug, n = base, 2
    while Brand.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@dataclass
class BrandImportResult:
    brands_created: int = 0
    brands_updated: int = 0
    aliases_created: int = 0
    errors: list[dict] = field(default_factory=list)  # {"line": n, "error": "..."}

    def summary(self) -> str:
        return (f"{self.brands_created} brands created, {self.brands_updated} seen again, "
                f"{self.aliases_created} aliases added, {len(self.errors)} problems")


class KbFileNotUtf8(ValueError):
    """A KB file with a byte that is not UTF-8: nothing is imported, and the message names the line."""


def kb_csv_decode(raw: bytes) -> str:
    """Decode a whole KB file first (it is small), so a bad byte imports nothing rather than half the file."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise KbFileNotUtf8(f"Nothing imported: line {line} is not UTF-8 (byte {exc.start}). "
                            "Save the file as UTF-8 and import it again.") from None


def brands_import_csv(*, stream: IO[str]) -> BrandImportResult:
    """Read the kb_brands.csv format. Idempotent; a bad row or a conflicting alias is reported by line."""
    categories = categories_ensure()
    result = BrandImportResult()
    reader = csv.DictReader(stream)
    missing = {"canonical_name", "category"} - set(reader.fieldnames or [])
    if missing:
        result.errors.append({"line": 1, "error": f"missing column(s): {', '.join(sorted(missing))}"})
        return result
    for row in reader:
        line = reader.line_num
        row = {k: cell_unescape(v) if isinstance(v, str) else v for k, v in row.items()}
        name = (row.get("canonical_name") or "").strip()
        slug = (row.get("category") or "").strip().lower()
        if not name:
            result.errors.append({"line": line, "error": "empty canonical_name"})
            continue
        too_long = [k for k, limit in FIELD_LIMITS.items()
                    if any(len(part) > limit for part in (row.get(k) or "").split("|" if k.startswith("alias") else None))]
        if too_long:
            result.errors.append({"line": line, "error": f"value too long in {', '.join(too_long)}"})
            continue
        existing = Brand.objects.filter(canonical_name=name).select_related("category").first()
        if existing is not None and not slug:  # an alias-only row for a known brand
            brand, created = existing, False
        elif slug not in categories:
            result.errors.append({"line": line, "error": f"unknown category {slug!r} (one of {', '.join(CATEGORY_SLUGS)})"})
            continue
        else:
            brand, created = brand_upsert(
                canonical_name=name,
                category=categories[slug],
                parent_company=(row.get("parent_company") or "").strip(),
                country=(row.get("country") or "").strip(),
                is_ambiguous=(row.get("ambiguity_risk") or "0").strip() in {"1", "true", "True", "yes"},
                source=(row.get("source") or "").strip(),
            )
        result.brands_created += created
        result.brands_updated += not created
        aliases = _split_pipe(row.get("aliases"))
        origins = _split_pipe(row.get("alias_origin"))
        for i, alias in enumerate(aliases):
            try:
                _, added = brand_alias_add(brand=brand, alias=alias, origin=origins[i] if i < len(origins) else "")
            except AliasConflict as exc:
                result.errors.append({"line": line, "error": str(exc)})
            else:
                result.aliases_created += added
    return result


def _split_pipe(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split("|") if part.strip()]


def brands_export_csv(*, brands: Iterable[Brand] | None = None) -> Iterable[str]:
    """The same CSV format as the import, one line at a time (for streaming responses)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return value

    writer.writerow(CSV_COLUMNS)
    yield flush()
    if brands is None:
        brands = Brand.objects.select_related("category").prefetch_related("aliases").order_by("canonical_name")
    for brand in brands:
        aliases = [a for a in brand.aliases.all() if a.origin != "canonical"]
        writer.writerow([cell_safe(v) for v in (
            brand.canonical_name, "|".join(a.alias for a in aliases), "|".join(a.origin for a in aliases),
            brand.category.slug, "", "", int(brand.is_ambiguous), brand.parent_company, brand.country, brand.source,
        )])
        yield flush()


@transaction.atomic
def alias_candidate_resolve(*, normalized: str, written: str, brand: Brand, accept: bool) -> BrandAlias | None:
    """An admin's answer to a teacher-proposed alias: accepted, `written` becomes an alias of `brand`
    (AliasConflict if it names another brand); rejected, the pair is never proposed again."""
    from kb.models import AliasRejection

    if accept:
        alias, _ = brand_alias_add(brand=brand, alias=written, origin="teacher")
        return alias
    AliasRejection.objects.get_or_create(normalized=normalize(written) or normalized, brand=brand)
    return None


class CandidateError(ValueError):
    """An admin's answer to a brand candidate that cannot be applied; the message says why."""


@transaction.atomic
def brand_from_candidate(*, written: str, action: str, category: Category | None = None,
                         brand: Brand | None = None) -> Brand:
    """A form annotators marked that the KB lacks: `create` it as a new brand (in `category`), or add it
    as an `alias` of `brand`. Returns the brand that now holds the form."""
    if action == "create":
        if category is None:
            raise CandidateError("Pick a category for the new brand.")
        brand, _ = brand_upsert(canonical_name=written.strip(), category=category, source="annotators")
    elif action == "alias":
        if brand is None:
            raise CandidateError("Pick the brand this is another name of.")
    else:
        raise CandidateError(f"Unknown action {action!r}.")
    try:
        brand_alias_add(brand=brand, alias=written, origin="annotators")
    except AliasConflict as exc:
        raise CandidateError(str(exc)) from exc
    return brand
