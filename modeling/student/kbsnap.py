"""A KB snapshot the student carries with it: BrandIndex rows built without Django and saved in artifacts.

The student reads KB aliases through `kb.gazetteer` (a per-token feature) and links spans to brands, so
an artifact stores the alias table it was trained with and predicts the same way on any host.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from kb.linking import BrandEntry, BrandIndex, normalize

# Chinese names of international brands as written on Xiaohongshu/Weibo. Added to the student's index
# (only for brands present in the KB) so CJK mentions get the gazetteer feature and link to the brand.
CJK_ALIASES: dict[str, list[str]] = {
    "Estée Lauder": ["雅诗兰黛"],
    "Lancôme": ["兰蔻"],
    "Shiseido": ["资生堂"],
    "Dior": ["迪奥"],
    "CHANEL": ["香奈儿"],
    "CLINIQUE": ["倩碧"],
    "La Mer": ["海蓝之谜"],
    "Kiehl's Since 1851": ["科颜氏"],
    "Maybelline": ["美宝莲"],
    "LANEIGE": ["兰芝"],
    "Sulwhasoo": ["雪花秀"],
    "innisfree": ["悦诗风吟"],
    "Yves Saint Laurent": ["圣罗兰"],
    "Guerlain": ["娇兰"],
    "Sisley": ["希思黎"],
}


def rows_from_csv(*paths: str | Path) -> list[dict]:
    """kb_brands.csv (+ alias-only files such as kb_aliases_extra.csv) → [{canonical_name, category,
    aliases, is_ambiguous}]; a row naming a brand seen before adds its aliases to it."""
    rows: dict[str, dict] = {}
    for path in paths:
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                name = (row.get("canonical_name") or "").strip()
                if not name:
                    continue
                aliases = [a.strip() for a in (row.get("aliases") or "").split("|") if a.strip()]
                if name in rows:
                    rows[name]["aliases"].extend(a for a in aliases if a not in rows[name]["aliases"])
                    continue
                rows[name] = {
                    "canonical_name": name,
                    "category": (row.get("category") or "other").strip() or "other",
                    "aliases": aliases,
                    "is_ambiguous": (row.get("ambiguity_risk") or "0").strip() in {"1", "true", "True", "yes"},
                }
    return list(rows.values())


def with_cjk_aliases(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        extra = CJK_ALIASES.get(row["canonical_name"], [])
        out.append({**row, "aliases": list(row["aliases"]) + [a for a in extra if a not in row["aliases"]]})
    return out


def index_from_rows(rows: list[dict]) -> BrandIndex:
    """Same precedence as kb.linking.build_index: first alias wins, a canonical name always names its brand."""
    entries: dict[str, BrandEntry] = {}
    brands = []
    evidence: set[str] = set()
    for i, row in enumerate(rows, start=1):
        evidence.update(row.get("evidence_aliases") or ())
        entry = BrandEntry(int(row.get("brand_id") or i), row["canonical_name"], row["category"], bool(row["is_ambiguous"]))
        brands.append(entry)
        for alias in row["aliases"]:
            key = normalize(alias)
            if key and key not in entries:
                entries[key] = entry
    for entry, row in zip(brands, rows):
        key = normalize(entry.canonical_name)
        if key and not row.get("canonical_left_out"):
            entries[key] = entry
    return BrandIndex(entries, frozenset(evidence))


def rows_from_index(index: BrandIndex) -> list[dict]:
    """Index → rows; aliases are the normalised keys (normalising them again is a no-op)."""
    by_id: dict[int, dict] = {}
    for key, entry in index.by_key.items():
        row = by_id.setdefault(entry.brand_id, {
            "brand_id": entry.brand_id, "canonical_name": entry.canonical_name, "category": entry.category,
            "aliases": [], "is_ambiguous": entry.is_ambiguous})
        row["aliases"].append(key)
        if key in index.evidence_keys:
            row.setdefault("evidence_aliases", []).append(key)
    for row in by_id.values():
        # A student's index may leave a canonical name out (the texts use it as a word), or a mined brand's
        # name may be a KB alias of another brand: then the name must not take the key back on reload.
        named = index.by_key.get(normalize(row["canonical_name"]))
        if named is None or named.brand_id != row["brand_id"]:
            row["canonical_left_out"] = True
    return sorted(by_id.values(), key=lambda r: r["canonical_name"].casefold())


def save_rows(rows: list[dict], path: Path) -> None:
    Path(path).write_text(json.dumps(rows, ensure_ascii=False))


def load_rows(path: Path) -> list[dict]:
    return json.loads(Path(path).read_text())
