"""The KB's brand index as the app serves it: built from the database, one per process, rebuilt in every
process when brands or aliases change (a version counter in the cache). kb.linking and kb.gazetteer, the
matching itself, know no Django; this module is where the index meets the database."""

from __future__ import annotations

import threading

from django.core.cache import cache

from kb.gazetteer import Gazetteer
from kb.linking import BrandEntry, BrandIndex, Link, normalize
from kb.models import Brand, BrandAlias

_lock = threading.Lock()
_cached: tuple[int, BrandIndex] | None = None
_gazetteer: tuple[BrandIndex, Gazetteer] | None = None
_VERSION_KEY = "kb:index-version"


def bump_index_version() -> None:
    """Called whenever brands or aliases change, so every process rebuilds its index."""
    try:
        cache.incr(_VERSION_KEY)
    except ValueError:
        cache.set(_VERSION_KEY, 2, timeout=None)


def get_index() -> BrandIndex:
    global _cached
    version = cache.get(_VERSION_KEY) or 1
    with _lock:
        if _cached is None or _cached[0] != version:
            _cached = (version, build_index())
        return _cached[1]


def get_gazetteer() -> Gazetteer:
    """The gazetteer over the served index, built once per index: its Aho-Corasick automaton costs
    about 0.6 µs a key, too much to build again for every request or pre-label chunk."""
    global _gazetteer
    index = get_index()
    with _lock:
        if _gazetteer is None or _gazetteer[0] is not index:
            _gazetteer = (index, Gazetteer(index))
        return _gazetteer[1]


def build_index() -> BrandIndex:
    entries: dict[str, BrandEntry] = {}
    brands = {
        b.pk: BrandEntry(b.pk, b.canonical_name, b.category.slug, b.is_ambiguous)
        for b in Brand.objects.filter(is_active=True).select_related("category")
    }
    for brand_id, key in BrandAlias.objects.filter(brand__is_active=True).values_list("brand_id", "normalized"):
        entries[key] = brands[brand_id]
    for brand in brands.values():  # a canonical name always names its own brand
        entries[normalize(brand.canonical_name)] = brand
    return BrandIndex(entries)


def resolve(text: str, **kwargs) -> Link:
    return get_index().resolve(text, **kwargs)
