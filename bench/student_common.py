"""Shared by the student benchmarks: demo data as Examples, the KB index without Django, social-style posts."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from modeling.student.demo import gold_examples, hash_fold, read_jsonl, silver_examples  # noqa: E402
from modeling.student.kbsnap import index_from_rows, rows_from_csv, with_cjk_aliases  # noqa: E402

DEMO = ROOT / "data" / "demo"


def newest_artifact(given: str = "") -> str:
    """The artifact a bench measures: the one given, else the newest trained generation under var/models."""
    if given:
        return given
    found = sorted((ROOT / "var" / "models").glob("gen-*/adapter"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit("No trained generation found: pass --artifact DIR (python manage.py train_generation ...)")
    return str(found[-1].parent)


def train_small_student(out_dir: str | Path, *, epochs: float, threads: int, log=None) -> float:
    """A short training of the real MiniLM student on the demo gold posts (a tenth held out to choose the
    checkpoint and the decoding), for a benchmark given no generation; returns its seconds. Its quality is
    a few minutes' worth; its speed is any generation's (same backbone, windows, heads and decoding)."""
    import time

    from modeling.student.config import StudentConfig
    from modeling.student.train import train_student

    gold = demo_gold()
    val = [e for e in gold if hash_fold("val:" + e.id, 10) == 0]
    train = [e for e in gold if hash_fold("val:" + e.id, 10) != 0]
    # A few epochs at a larger step than the full recipe's, one evaluation at the end, no checkpoints.
    cfg = StudentConfig(epochs=epochs, threads=threads, lr_scale=2.0, eval_every_epochs=epochs,
                        checkpoint_every_steps=1_000_000)
    started = time.monotonic()
    train_student(cfg, train, val, demo_index(), out_dir, log=log)
    return round(time.monotonic() - started, 1)


def demo_index():
    files = [DEMO / "kb_brands.csv"] + ([DEMO / "kb_aliases_extra.csv"] if (DEMO / "kb_aliases_extra.csv").exists() else [])
    return index_from_rows(with_cjk_aliases(rows_from_csv(*files)))


def demo_gold():
    return gold_examples(read_jsonl(DEMO / "gold_seed.jsonl"))


def demo_silver(weight: float):
    return silver_examples(read_jsonl(DEMO / "posts_unlabelled.jsonl"), read_jsonl(DEMO / "teacher_answers.jsonl"),
                           weight)


# Written in the styles of TikTok / Instagram / Xiaohongshu: hashtags, handles, emoji glued to names,
# lowercase and misspellings, Chinese brand names. (text, [(mention, canonical brand)])
SOCIAL = [
    ("obsessed with my new #esteelauder advanced night repair ✨✨", [("esteelauder", "Estée Lauder")]),
    ("ok but the @cerave moisturizing cream is a holy grail for dry skin", [("cerave", "CeraVe")]),
    ("#skii facial treatment essence worth the hype? 🤔", [("skii", "SK-II")]),
    ("雅诗兰黛小棕瓶真的好用 回购第三瓶了", [("雅诗兰黛", "Estée Lauder")]),
    ("兰蔻粉水 vs 雅诗兰黛 哪个更适合干皮", [("兰蔻", "Lancôme"), ("雅诗兰黛", "Estée Lauder")]),
    ("maybelline sky high mascara is sooo good for the price", [("maybelline", "Maybelline")]),
    ("l'oreal true match foundation shade 3 on me", [("l'oreal", "L'Oréal Paris")]),
    ("💄Dior lip glow oil in cherry 🍒 #grwm", [("Dior", "Dior")]),
    ("clinque moisture surge saved my skin this winter", [("clinque", "CLINIQUE")]),
    ("my clearsil spot treatment finally came in", [("clearsil", "Clearasil")]),
    ("@fentybeauty gloss bomb in fenty glow 😍", [("fentybeauty", "FENTY BEAUTY by Rihanna"), ("fenty", "FENTY BEAUTY by Rihanna")]),
    ("grwm using only @rarebeauty and @glossier today", [("rarebeauty", "Rare Beauty"), ("glossier", "Glossier")]),
    ("nars radiant creamy concealer + laneige lip mask = perfect combo", [("nars", "NARS"), ("laneige", "LANEIGE")]),
    ("going to the gym then brunch with the girls ☀️", []),
    ("new iphone camera is insane for night shots", []),
    ("tried the #theordinary niacinamide and my pores look smaller", [("theordinary", "The Ordinary")]),
    ("kiehls ultra facial cream is my winter staple", [("kiehls", "Kiehl's Since 1851")]),
    ("haul from sephora: charlotte tilbury pillow talk + drunk elephant", [("charlotte tilbury", "Charlotte Tilbury"), ("drunk elephant", "Drunk Elephant")]),
    ("#larocheposay cicaplast baume b5 for my dry patches", [("larocheposay", "La Roche-Posay")]),
]


# Brands newer than the seed KB and absent from the teacher's demo answers (checked by `newer_rows`):
# only what the model learnt from context and spelling can find them; the gazetteer cannot.
NEWER = [
    ("obsessed with my rhode peptide lip treatment 💗", [("rhode", "rhode")]),
    ("Tower 28 sunnydays spf is so underrated", [("Tower 28", "Tower 28")]),
    ("grwm with Haus Labs foundation and a little bronzer ✨", [("Haus Labs", "Haus Labs")]),
    ("anua heartleaf toner restock 🛒", [("anua", "Anua")]),
    ("Skin1004 centella ampoule calmed my redness in a week", [("Skin1004", "Skin1004")]),
    ("Medicube zero pore pads changed my skin fr", [("Medicube", "Medicube")]),
    ("花西子 散粉真的很好用 持妆一整天", [("花西子", "Florasis")]),
    ("the @youthforia dew drops are giving glass skin", [("youthforia", "Youthforia")]),
    ("Makeup by Mario master eyeshadow palette is worth it", [("Makeup by Mario", "Makeup by Mario")]),
    ("torriden dive in serum + round lab sunscreen is my am routine", [("torriden", "Torriden"), ("round lab", "Round Lab")]),
    ("#gisou honey infused hair oil smells unreal 🍯", [("gisou", "Gisou")]),
    ("K18 mask fixed my bleach damage", [("K18", "K18")]),
    ("just tried Bubble skincare moisturizer and honestly not impressed", [("Bubble", "Bubble")]),
    ("biodance collagen mask overnight = glass skin 🥹", [("biodance", "Biodance")]),
    ("mielle rosemary oil for hair growth update month 3", [("mielle", "Mielle")]),
    ("Krave Beauty great barrier relief is back in stock!", [("Krave Beauty", "Krave Beauty")]),
    ("new Refy brow sculpt vs my old gel", [("Refy", "Refy")]),
    ("ok the avene thermal water spray is my summer staple", [("avene", "Avène")]),
    ("my cat knocked my coffee over this morning 😭", []),
    ("Finally booked my trip to Lisbon for June!", []),
]


def newer_rows() -> list[dict]:
    index = demo_index()
    from kb.linking import normalize

    taught = {normalize(s["text"]) for e in demo_silver(1.0) for s in e.spans}
    known = [w for _, mentions in NEWER for w, _ in mentions if normalize(w) in index.by_key or normalize(w) in taught]
    assert not known, f"these NEWER brands are in the demo KB or the teacher's answers: {known}"
    return _rows(NEWER, "newer")


def social_rows() -> list[dict]:
    return _rows(SOCIAL, "social")


def _rows(posts, prefix: str) -> list[dict]:
    rows = []
    for i, (text, mentions) in enumerate(posts):
        brands, cursor = [], 0
        for written, brand in mentions:
            start = text.index(written, cursor)
            brands.append({"start": start, "end": start + len(written), "text": written, "brand": brand})
            cursor = start + len(written)
        rows.append({"id": f"{prefix}-{i}", "text": text, "is_beauty": bool(mentions), "brands": brands})
    return rows
