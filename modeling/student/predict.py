"""Inference: load an artifact (or wrap a model being trained) and turn texts into spans + post labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from kb.gazetteer import as_written
from kb.linking import BrandIndex, normalize

from .config import CATEGORIES, StudentConfig
from .encoding import Encoded, Featurizer
from .kbsnap import index_from_rows, load_rows
from .lexicon import is_mined
from .model import unwrap
from .pipeline import collate, decode_spans
from .text import CJK, common_chinese_word, units


class StudentPredictor:
    def __init__(self, model, featurizer: Featurizer, index: BrandIndex, brands: list[str], cfg: StudentConfig,
                 device: str = "cpu", plain_words: set[str] = frozenset()):
        self.model = model
        self.featurizer = featurizer
        self.index = index
        self.brands = brands  # row i of the brand embedding table = canonical name
        self.brand_entries = [index.by_canonical.get(normalize(b)) for b in brands]
        self.cfg = cfg
        self.device = device
        self.plain_words = plain_words  # train.plain_word_set: a span of these words alone is not a new brand

    @classmethod
    def load(cls, artifact_dir: str | Path, device: str = "cpu") -> "StudentPredictor":
        from .train import TRAIN_LABELS_FILE, load_model

        artifact_dir = Path(artifact_dir)
        cfg = StudentConfig.load(artifact_dir / "config.json")
        index = index_from_rows(load_rows(artifact_dir / "kb.json"))
        brands = json.loads((artifact_dir / "brands.json").read_text())
        model, tokenizer = load_model(artifact_dir, cfg, len(brands), device=device)
        # Serving never trains: LoRA goes into the backbone's weights once, so a forward pass is the bare
        # backbone's plus the heads (no adapter matmuls per layer).
        model = model.merge_and_unload().eval()
        featurizer = Featurizer.for_config(tokenizer, index, cfg)
        predictor = cls(model, featurizer, index, brands, cfg, device, plain_words=load_plain_words(artifact_dir))
        labels = artifact_dir / TRAIN_LABELS_FILE
        predictor.train_labels = set(json.loads(labels.read_text())) if labels.exists() else set()
        return predictor

    def known_keys(self) -> set[str]:
        """Every form and brand this generation was told about: its KB snapshot (aliases, canonical names,
        lexicon) and its training labels. Mentions outside it are 'unseen' (metrics.unseen_brand_scores)."""
        keys = set(self.index.by_key) | {normalize(e.canonical_name) for e in self.index.by_id.values()}
        return keys | getattr(self, "train_labels", set())

    @torch.no_grad()
    def predict(self, texts: list[str], batch_size: int = 32) -> list[dict]:
        student = unwrap(self.model)
        results: dict[int, dict] = {}
        for ids, encs, H, post, tag_lp in self._forward(texts, batch_size):
            spans = self.spans(encs, [tag_lp[p, : len(enc.input_ids)] for p, enc in enumerate(encs)])
            if any(spans):
                sb = collate(self.featurizer, encs, spans=spans, device=self.device)
                so = student.span_outputs(H, post["post_vec"], sb["span_index"], sb["span_mask"])
                cats = so["category_logits"].argmax(-1).cpu()
                sims = so["align_sim"].cpu()
            beauty = post["beauty_logits"].softmax(-1)[:, 1].cpu()
            counts = post["count_logits"].argmax(-1).cpu()
            for p, i in enumerate(ids):
                brands = []
                for s, span in enumerate(spans[p]):
                    brands.append(self._link(texts[i], span, int(cats[p, s]), sims[p, s]))
                # brand_count agrees with the brands listed (as every source's does); the count head, a
                # training signal that reads pooled states, is kept beside it for audit: measured on the
                # demo split, counting the decoded spans is right more often (0.91 vs 0.72 on test).
                results[i] = {"is_beauty": bool(beauty[p] >= 0.5), "beauty_score": round(float(beauty[p]), 4),
                              "brand_count": len(brands), "brand_count_head": int(counts[p]), "brands": brands}
        return [results[i] for i in range(len(texts))]

    @torch.no_grad()
    def tag_logprobs(self, texts: list[str], batch_size: int = 32) -> tuple[list[Encoded], list[torch.Tensor]]:
        """Each text's encoding and per-token tag log-probabilities, in the order of `texts`: what `spans`
        decodes, so several decodings can be compared on one encoder pass."""
        found: dict[int, tuple[Encoded, torch.Tensor]] = {}
        for ids, encs, _, _, tag_lp in self._forward(texts, batch_size):
            for p, (i, enc) in enumerate(zip(ids, encs)):
                found[i] = (enc, tag_lp[p, : len(enc.input_ids)])
        return [found[i][0] for i in range(len(texts))], [found[i][1] for i in range(len(texts))]

    def spans(self, encs: list[Encoded], tag_lp: list[torch.Tensor], *, word_rule: str | None = None,
              span_threshold: float | None = None) -> list[list[dict]]:
        """Each post's decoded spans: the model's, or with KB-aware decoding the gazetteer's matches plus the
        model's spans of at least `span_threshold` (defaults: the config's)."""
        rule = word_rule or self.cfg.word_rule
        if not self.cfg.kb_decoding:
            return [decode_spans(enc, lp, self.index, rule) for enc, lp in zip(encs, tag_lp)]
        threshold = self.cfg.span_threshold if span_threshold is None else span_threshold
        cut = min(0.5, threshold)
        return [self._with_kb(enc, decode_spans(enc, lp, self.index, rule, cut), threshold)
                for enc, lp in zip(encs, tag_lp)]

    def _forward(self, texts: list[str], batch_size: int):
        """Texts through the encoder in eval mode (restored afterwards), shortest first, `batch_size` posts at
        a time, each batch cut into encoder calls of similar length (`length_groups`): yields (text indexes,
        encodings, states, post-level outputs, tag log-probabilities on the CPU) per call."""
        was_training = self.model.training
        self.model.eval()
        student = unwrap(self.model)
        encoded = [self.featurizer.encode(text) for text in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i].input_ids))
        try:
            for b in range(0, len(order), batch_size):
                batch_ids = order[b: b + batch_size]
                for group in length_groups([call_size(self.featurizer, encoded[i]) for i in batch_ids]):
                    ids = batch_ids[group.start: group.stop]
                    encs = [encoded[i] for i in ids]
                    batch = collate(self.featurizer, encs, device=self.device)
                    H = student.encode(batch)
                    post = student.post_outputs(H, batch["post_mask"])
                    yield ids, encs, H, post, post["tag_logits"].log_softmax(-1).cpu()
        finally:
            if was_training:
                self.model.train()

    def _with_kb(self, enc: Encoded, model_spans: list[dict], threshold: float) -> list[dict]:
        # A match keeps its brand: the gazetteer already weighed the evidence an ambiguous name needs
        # (the '@' of "@glowrecipe" is outside the span, so linking the span text alone would lose it).
        # The matches are the featurizer's (one dictionary pass per post).
        out = [{"start": m.start, "end": m.end, "text": m.text, "confidence": 1.0, "_match": m.brand}
               for m in enc.matches]
        brand_ends = {m.end for m in enc.matches}
        lists = ingredient_lists(enc.text) if model_spans else []
        post_units = units(enc.text, enc.words) if model_spans else []
        for span in model_spans:
            if span["confidence"] >= threshold and not any(
                    span["start"] < o["end"] and o["start"] < span["end"] for o in out) \
                    and not self._not_a_new_brand(enc.text, span, brand_ends, post_units, lists):
                out.append(span)
                brand_ends.add(span["end"])
        return sorted(out, key=lambda s: s["start"])

    def _not_a_new_brand(self, text: str, span: dict, brand_ends: set[int],
                         post_units: list[tuple[int, int]], lists: list[tuple[int, int]] = ()) -> bool:
        """Spans the model adds that, measured on held-out brands, are nearly never one: a product line right
        after a brand the KB matched or the model kept ("Dior Sauvage", "Decleor's Masque": 1 true of 38 right
        after a match; with up to three capitalised words between, "Tom Ford Tobacco Vanille", held-out social
        posts' precision at threshold 0.6 went 0.849 → 0.864, recall unchanged), a hashtag made of plain
        words ("#beautyhaul", "#savingmoney"), one CJK
        character (毛 of 毛戈平: 0 of 36), an everyday Chinese word (医生, 珍珠: on fold 0 unseen-brand
        precision at 0.7 went 0.63 → 0.66, recall unchanged), only words the training texts use as plain
        words, or an item of an ingredient list ("Ingredients: Water, Isocetyl Stearate, ..." reads like a
        list of names)."""
        start, end = span["start"], span["end"]
        if any(a <= start and end <= b for a, b in lists):
            return True
        if any(0 < start - e <= 80 and PRODUCT_RUN.fullmatch(text[e:start]) for e in brand_ends):
            return True
        if start and text[start - 1] == "#" and self._plain_compound(text[start:end].lower()):
            return True
        if (end - start == 1 and CJK.match(text[start])) or common_chinese_word(text[start:end]):
            return True
        names = [text[a:b].lower() for a, b in post_units if start <= a and b <= end]
        return bool(names) and all(w in self.plain_words for w in names)

    def _plain_compound(self, body: str) -> bool:
        """`body` cut into two or more words the training texts use as plain words ('beautyhaul', 'savingmoney')."""
        n = len(body)
        if n < 6 or not body.isalpha():
            return False
        reach = [0] + [-1] * n  # reach[i]: fewest words that cover body[:i] (-1: none)
        for i in range(3, n + 1):
            best = -1
            for j in range(0, i - 2):
                if reach[j] >= 0 and body[j:i] in self.plain_words and (best < 0 or reach[j] + 1 < best):
                    best = reach[j] + 1
            reach[i] = best
        return reach[n] >= 2

    def _link(self, text: str, span: dict, category: int, sims: torch.Tensor) -> dict:
        matched = span.pop("_match", None)
        if matched is not None:
            entry, method = matched, "exact"
        else:
            link = self.index.resolve(as_written(text, span["start"], span["end"]), context=text)
            entry, method = link.brand, link.method
        if entry is None and len(self.brands) and self.cfg.align_threshold < 1.0:
            best = int(sims.argmax())
            if float(sims[best]) >= self.cfg.align_threshold and self.brand_entries[best] is not None:
                entry, method = self.brand_entries[best], "aligned"
        if entry is not None and is_mined(entry):  # learnt from training labels: named, but no KB row
            return {**span, "brand": entry.canonical_name, "brand_id": None, "category": entry.category,
                    "link": "lexicon"}
        if entry is not None:
            return {**span, "brand": entry.canonical_name, "brand_id": entry.brand_id,
                    "category": entry.category, "link": method}
        name = span["text"].lstrip("#@")
        return {**span, "brand": name, "brand_id": None, "category": CATEGORIES[category], "link": "none"}


INGREDIENTS = re.compile(r"\bingredients?\b[^\n:：]{0,20}[:：]", re.IGNORECASE)


def ingredient_lists(text: str) -> list[tuple[int, int]]:
    """Character ranges of INCI lists: from "Ingredients:" to the end of its line, when that holds at least
    four commas (a sentence that merely says "ingredients:" is not a list)."""
    found = []
    for m in INGREDIENTS.finditer(text):
        line_end = text.find("\n", m.end())
        end = len(text) if line_end < 0 else line_end
        if text.count(",", m.end(), end) >= 4:
            found.append((m.end(), end))
    return found


# Between a brand and a word of its product line: "Dior Sauvage", "Decleor's Masque", "Tom Ford Tobacco
# Vanille", "Kilian Love Don't Be Shy" (up to three capitalised words between).
PRODUCT_RUN = re.compile(r"(?:['’]s)?(?: {1,2}[A-Z0-9][\w'’.-]*){0,3} {1,2}")


def load_plain_words(artifact_dir: Path) -> set[str]:
    from .train import PLAIN_WORDS_FILE

    path = Path(artifact_dir) / PLAIN_WORDS_FILE
    return set(json.loads(path.read_text())) if path.exists() else set()


# What one more encoder call costs, counted in padded tokens. Swept on 160 demo posts at batch 32 (MiniLM,
# 2 threads): 128-256 served ~1.6x the posts/s of one call per batch; 0 (many small calls) was no better
# than one call, and 512 a little worse than 256.
CALL_TOKENS = 256


def call_size(featurizer: Featurizer, enc: Encoded) -> tuple[int, int]:
    """(windows, longest window with its special tokens): what a post adds to an encoder call (`collate`)."""
    extra = len(featurizer.prefix_ids) + len(featurizer.suffix_ids)
    return max(1, len(enc.windows)), extra + max((end - start for start, end in enc.windows), default=0)


def length_groups(sizes: list[tuple[int, int]], call_tokens: int = CALL_TOKENS) -> list[range]:
    """Consecutive groups of posts, one encoder call each, that cost the fewest padded tokens (a call pads
    every window to its longest), a call counting `call_tokens` more. sizes[k] = (windows, longest window)
    of post k; sorted by length, a batch of short posts and a long one then pads the short ones no more."""
    best = [0] + [float("inf")] * len(sizes)
    cut = [0] * (len(sizes) + 1)
    for end in range(1, len(sizes) + 1):
        windows = longest = 0
        for start in range(end - 1, -1, -1):
            windows += sizes[start][0]
            longest = max(longest, sizes[start][1])
            cost = best[start] + call_tokens + windows * longest
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], len(sizes)
    while end:
        groups.append(range(cut[end], end))
        end = cut[end]
    return groups[::-1]
