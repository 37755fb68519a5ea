"""The student without Django: tiny Qwen2 overfit → save → reload, stage boundaries, windowing, resume, cancel,
and the social-media writing styles (hashtags, handles, CJK, lowercase, emoji glued to names)."""

from __future__ import annotations

import random
import shutil

import pytest
import torch

from modeling.student.config import SCHEDULE, StudentConfig, lr_at, scaled_schedule, stage_at
from modeling.student.encoding import Featurizer, bio_labels
from modeling.student.model import lora_targets, set_trainable, trainable_groups_of
from modeling.student.lexicon import is_mined
from modeling.student.pipeline import collate, decode_spans, drop_gazetteer
from modeling.student.predict import StudentPredictor
from modeling.student.text import Example, align_mentions, augment, words
from modeling.student.train import CHECKPOINT_SCHEMA, Cancelled, RunState, build_model, load_tokenizer, train_student

from .student_factories import build_tiny_qwen2, labelled, social_examples, tiny_index

OVERFIT = dict(epochs=80, batch_size=8, lr_scale=8.0, augment_prob=0.0, swap_prob=0.0, max_window=16, window_stride=10,
               eval_every_epochs=1000, checkpoint_every_steps=10, seed=13, kb_decoding=False, gaz_dropout=0.0)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory):
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))


def _spans(pred):
    return [(s["start"], s["end"]) for s in pred["brands"]]


def _gold(ex):
    return [(s["start"], s["end"]) for s in ex.spans]


@pytest.fixture(scope="session")
def overfit(tiny_backbone, tmp_path_factory):
    """A handful of social-style posts trained to near-zero loss; windows of 16 tokens split most posts."""
    torch.set_num_threads(1)
    examples = social_examples() + [_straddling(tiny_backbone)]
    out = tmp_path_factory.mktemp("overfit")
    progress = []
    cfg = StudentConfig(backbone=tiny_backbone, **OVERFIT)
    summary = train_student(cfg, examples, [], tiny_index(), out, on_progress=progress.append)
    return {"examples": examples, "dir": out, "summary": summary, "progress": progress, "cfg": cfg}


def test_overfits_social_posts_and_reloads_with_identical_predictions(overfit, tmp_path):
    assert overfit["summary"]["history"][-1]["loss"] < 0.1
    examples = overfit["examples"]
    predictor = StudentPredictor.load(overfit["dir"])
    preds = predictor.predict([e.text for e in examples])
    assert [_spans(p) for p in preds] == [_gold(e) for e in examples]
    # Hashtag, CJK and lowercase/KB alias spans link to the canonical brand.
    by_text = {e.text: p for e, p in zip(examples, preds)}
    assert by_text["my #esteelauder night serum is the best ✨"]["brands"][0]["brand"] == "Estée Lauder"
    assert by_text["雅诗兰黛小棕瓶 真的好用 推荐"]["brands"][0]["brand"] == "Estée Lauder"
    assert [b["brand"] for b in by_text["maybelline mascara vs l'oreal which one?"]["brands"]] == [
        "Maybelline", "L'Oréal Paris"]
    assert by_text["Got the new @cerave cleanser and it is so gentle"]["brands"][0]["text"] == "cerave"
    assert [p["is_beauty"] for p in preds] == [e.is_beauty for e in examples]
    assert all(p["brand_count"] == len(p["brands"]) and 0 <= p["brand_count_head"] <= 3 for p in preds)
    # The artifact is self-contained: copied elsewhere it reloads to the very same outputs.
    moved = tmp_path / "moved"
    shutil.copytree(overfit["dir"], moved)
    again = StudentPredictor.load(moved).predict([e.text for e in examples])
    assert again == preds
    for name in ("adapter/adapter_model.safetensors", "adapter/adapter_config.json", "tokenizer/tokenizer.json",
                 "config.json", "kb.json", "brands.json", "layers.safetensors"):
        assert (moved / name).exists(), name


def test_heads_are_saved_by_peft_modules_to_save(overfit):
    import json

    adapter_cfg = json.loads((overfit["dir"] / "adapter" / "adapter_config.json").read_text())
    assert {"tag_head", "span_attn", "brand_emb", "gaz_in"} <= set(adapter_cfg["modules_to_save"])
    assert "q_proj" in adapter_cfg["target_modules"] and "v_proj" in adapter_cfg["target_modules"]


def _straddling(backbone) -> Example:
    """A post where "ColourPop" (not in the KB: only the model can find it) crosses the first window edge."""
    fz = Featurizer(load_tokenizer(backbone), tiny_index(), max_window=OVERFIT["max_window"],
                    stride=OVERFIT["window_stride"])
    for n in range(40):
        text = "so " * n + "we tried ColourPop palettes"
        enc = fz.encode(text)
        start = text.index("ColourPop")
        toks = [t for t, (s, e) in enumerate(enc.offsets) if s < start + 9 and start < e]
        if toks[0] < enc.windows[0][1] <= toks[-1]:
            return labelled(text, ("ColourPop", "ColourPop", "makeup"))
    raise AssertionError("could not place the brand across a window edge")


def test_windowing_recovers_a_brand_that_straddles_a_window_edge(overfit):
    ex = overfit["examples"][-1]
    predictor = StudentPredictor.load(overfit["dir"])
    enc = predictor.featurizer.encode(ex.text)
    start = ex.spans[0]["start"]
    toks = [t for t, (s, e) in enumerate(enc.offsets) if s < start + 9 and start < e]
    first_end = enc.windows[0][1]
    assert len(enc.windows) >= 2 and toks[0] < first_end <= toks[-1]
    assert enc.windows[1][0] < first_end  # overlapping windows
    covered = set()
    for ws, we in enc.windows:
        covered.update(range(ws, we))
    assert covered == set(range(len(enc.input_ids)))  # nothing truncated
    pred = predictor.predict([ex.text])[0]
    assert _spans(pred) == [(start, start + len("ColourPop"))]
    assert pred["brands"][0]["text"] == "ColourPop"


def test_stage_schedule_switches_trainable_groups_exactly_at_boundaries(overfit):
    progress = overfit["progress"]
    schedule = scaled_schedule(overfit["cfg"].epochs, lr_scale=overfit["cfg"].lr_scale)
    assert [s.name for s in schedule] == ["warmup", "stable", "progressive_unfreeze", "fine_tune"]
    assert schedule[1].start == pytest.approx(8.0) and schedule[2].start == pytest.approx(48.0)
    for p in progress:
        expected = stage_at(schedule, p.epoch)
        assert p.stage == expected.name
        assert set(p.trainable) == set(expected.trainable), (p.step, p.epoch)
        assert p.lr == pytest.approx(lr_at(expected, p.epoch))
    # The first step at or after each boundary runs the new stage, the step before it the old one.
    for before, after in zip(schedule, schedule[1:]):
        last_before = max((p for p in progress if p.epoch < after.start), key=lambda p: p.step)
        first_after = min((p for p in progress if p.epoch >= after.start), key=lambda p: p.step)
        assert last_before.stage == before.name and first_after.stage == after.name


def test_stage_at_and_lr_ramps():
    sched = scaled_schedule(10)
    assert stage_at(sched, 0.0).name == "warmup"
    assert stage_at(sched, 0.999).name == "warmup" and stage_at(sched, 1.0).name == "stable"
    assert stage_at(sched, 5.999).name == "stable" and stage_at(sched, 6.0).name == "progressive_unfreeze"
    assert stage_at(sched, 8.0).name == "fine_tune" and stage_at(sched, 99).name == "fine_tune"
    assert lr_at(sched[0], 0.0) == pytest.approx(1e-4) and lr_at(sched[0], 1.0) == pytest.approx(5e-4)
    assert lr_at(sched[2], 7.0) == pytest.approx(3.5e-4)
    assert [s.trainable for s in SCHEDULE][2] == ("lora", "heads", "last_layers")


def test_set_trainable_on_a_real_model(tiny_backbone):
    cfg = StudentConfig(backbone=tiny_backbone)
    model = build_model(cfg, 3)
    for groups in [("lora", "heads"), ("lora", "heads", "last_layers"), ("heads",)]:
        set_trainable(model, groups, cfg.unfreeze_layers)
        assert trainable_groups_of(model, cfg.unfreeze_layers) == set(groups)
    # "last 6 layers" on a 2-layer backbone = both layers.
    set_trainable(model, ("last_layers",), 6)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".layers.0." in n for n in trained) and any(".layers.1." in n for n in trained)
    assert lora_targets(model.base_model.model.backbone.config) == ["q_proj", "v_proj"]


def test_resume_after_a_killed_run_continues_from_the_checkpoint(tiny_backbone, tmp_path):
    examples = social_examples()
    cfg = StudentConfig(backbone=tiny_backbone, epochs=6, batch_size=4, augment_prob=0.0, max_window=32,
                        window_stride=24, eval_every_epochs=1000, checkpoint_every_steps=2)
    first = train_student(cfg, examples, [], tiny_index(), tmp_path, stop_after_steps=5)
    assert first["stopped_at"] == 5 and (tmp_path / "checkpoint.pt").exists()
    assert not (tmp_path / "adapter").exists()
    seen, logs = [], []
    summary = train_student(cfg, examples, [], tiny_index(), tmp_path, on_progress=seen.append, log=logs.append)
    assert "resumed from step 5" in logs
    assert [p.step for p in seen] == list(range(6, summary["total_steps"] + 1))
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()


def test_a_checkpoint_resumes_only_the_run_that_made_it(tiny_backbone, tmp_path):
    """Other training data, another recipe or a broken file: the run starts over instead of mixing runs."""
    examples = social_examples()
    cfg = StudentConfig(backbone=tiny_backbone, epochs=2, batch_size=4, augment_prob=0.0, max_window=32,
                        window_stride=24, eval_every_epochs=1000, checkpoint_every_steps=2)
    train_student(cfg, examples, [], tiny_index(), tmp_path, stop_after_steps=2)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert saved["schema"] == CHECKPOINT_SCHEMA and saved["run"]["step"] == 2 and saved["stage"]
    assert len(saved["data_sha256"]) == 64

    logs: list[str] = []
    other = examples[1:]
    train_student(cfg, other, [], tiny_index(), tmp_path, log=logs.append, stop_after_steps=1)
    assert "checkpoint not resumed (made with other training data): training from the start" in logs
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["run"]["step"] == 1

    logs.clear()
    changed = StudentConfig.from_dict({**cfg.to_dict(), "lora_r": 4})
    train_student(changed, other, [], tiny_index(), tmp_path, log=logs.append, stop_after_steps=1)
    assert "checkpoint not resumed (made with other config): training from the start" in logs

    logs.clear()
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    train_student(changed, other, [], tiny_index(), tmp_path, log=logs.append, stop_after_steps=1)
    assert any(line.startswith("checkpoint not resumed (unreadable") for line in logs)

    logs.clear()  # the same run on a worker that checkpoints at another pace resumes
    elsewhere = StudentConfig.from_dict({**changed.to_dict(), "checkpoint_every_steps": 3})
    train_student(elsewhere, other, [], tiny_index(), tmp_path, log=logs.append, stop_after_steps=1)
    assert "resumed from step 1" in logs


def test_cancel_stops_between_steps_and_keeps_a_checkpoint(tiny_backbone, tmp_path):
    calls = {"n": 0}

    def should_cancel():
        calls["n"] += 1
        return calls["n"] > 3

    cfg = StudentConfig(backbone=tiny_backbone, epochs=4, batch_size=4, augment_prob=0.0, eval_every_epochs=1000)
    with pytest.raises(Cancelled):
        train_student(cfg, social_examples(), [], tiny_index(), tmp_path, should_cancel=should_cancel)
    assert (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "adapter").exists()


def test_features_mark_kb_aliases_in_social_writing(tiny_backbone):
    fz = Featurizer(load_tokenizer(tiny_backbone), tiny_index(), max_window=64, stride=48)
    for text, surface in [("love #esteelauder ✨", "esteelauder"), ("雅诗兰黛小棕瓶", "雅诗兰黛"),
                          ("maybelline mascara", "maybelline"), ("mybelline mascara", "mybelline")]:
        enc = fz.encode(text)
        start = text.index(surface)
        marked = [g for g, (s, e) in zip(enc.gaz, enc.offsets) if s < start + len(surface) and start < e
                  and text[s:e].strip()]
        assert marked and marked[0] in (1, 3), (text, marked)  # B (exact) or FB (fuzzy: a typo)


def test_word_level_decoding_never_returns_subword_fragments(tiny_backbone):
    fz = Featurizer(load_tokenizer(tiny_backbone), tiny_index(), max_window=64, stride=48)
    text = "Trying ColourPop and KVD palettes"
    enc = fz.encode(text)
    # Tag only the first sub-token of each brand word B, the rest O: decoding still returns whole words.
    logp = _all_o(enc)
    for surface in ("ColourPop", "KVD"):
        s = text.index(surface)
        first = next(t for t, (a, b) in enumerate(enc.offsets) if a <= s < b or (text[a:b].strip() and a >= s))
        logp[first] = torch.tensor([-5.0, 0.0, -5.0])
    spans = decode_spans(enc, logp, tiny_index())
    assert [s["text"] for s in spans] == ["ColourPop", "KVD"]
    assert decode_spans(fz.encode("Clinique's cream"), _all_b(fz.encode("Clinique's cream")), tiny_index())[0][
        "text"] == "Clinique"


def test_a_word_is_a_brand_when_any_of_its_pieces_is_tagged(tiny_backbone):
    """The tagger is often sure only past a name's first piece ("tor|ride|n"): the "any" rule takes the word."""
    fz = Featurizer(load_tokenizer(tiny_backbone), tiny_index(), max_window=64, stride=48)
    text = "torriden serum and Tower 28 spf"
    enc = fz.encode(text)
    logp = _all_o(enc)

    def tag(word_start: int, piece: int, label: int):
        toks = [t for t, w in enumerate(enc.token_word) if w >= 0 and enc.words[w][0] == word_start]
        assert len(toks) > piece, "the tiny tokenizer splits this word"
        logp[toks[piece]] = torch.tensor([-5.0, 0.0, -5.0] if label == 1 else [-5.0, -5.0, 0.0])

    tag(0, 1, 2)  # only "torriden"'s second piece says I
    tag(text.index("Tower"), 0, 1)
    tag(text.index("28"), 0, 2)  # "28" continues "Tower"
    assert [s["text"] for s in decode_spans(enc, logp, tiny_index(), "any")] == ["torriden", "Tower 28"]
    assert [s["text"] for s in decode_spans(enc, logp, tiny_index(), "first")] == ["Tower 28"]


def _all_o(enc):
    """Log-probabilities that tag every token O."""
    logp = torch.full((len(enc.input_ids), 3), -5.0)
    logp[:, 0] = 0.0
    return logp


def _all_b(enc):
    logp = _all_o(enc)
    logp[0] = torch.tensor([-5.0, 0.0, -5.0])  # only the first sub-token says B; the word is "Clinique's"
    return logp


def test_augmentation_writes_social_forms_with_exact_offsets():
    ex = labelled("Just bought Estee Lauder and Maybelline today", ("Estee Lauder", "Estée Lauder", "skincare"),
                  ("Maybelline", "Maybelline", "makeup"))
    seen = set()
    for seed in range(60):
        aug = augment(ex, random.Random(seed), {"Estée Lauder": ["雅诗兰黛"]})
        for span in aug.spans:
            assert aug.text[span["start"]:span["end"]] == span["text"]
            before = aug.text[span["start"] - 1] if span["start"] else ""
            seen.add("hashtag" if before == "#" else "handle" if before == "@" else
                     "cjk" if span["text"] == "雅诗兰黛" else "lower" if span["text"].islower() else "other")
    assert {"hashtag", "handle", "cjk", "lower"} <= seen


def test_teacher_mentions_align_to_occurrences_in_order():
    text = "CeraVe or cerave? I use CeraVe daily"
    spans = align_mentions(text, [{"text": "CeraVe", "brand": "CeraVe", "category": "skincare"},
                                  {"text": "cerave", "brand": "CeraVe", "category": "skincare"},
                                  {"text": "CeraVe", "brand": "CeraVe", "category": "skincare"}])
    assert [(s["start"], s["end"]) for s in spans] == [(0, 6), (10, 16), (24, 30)]
    assert align_mentions(text, [{"text": "Olay"}]) is None
    assert words("雅诗兰黛 is #skii") == [(0, 1), (1, 2), (2, 3), (3, 4), (5, 7), (9, 13)]


def test_collate_maps_every_post_token_to_the_windows(tiny_backbone):
    fz = Featurizer(load_tokenizer(tiny_backbone), tiny_index(), max_window=8, stride=5)
    texts = ["a fairly long post about maybelline and la mer and more words", "short"]
    encs = [fz.encode(t) for t in texts]
    batch = collate(fz, encs, [Example("a", texts[0]), Example("b", texts[1])])
    T = batch["post_mask"].shape[1]
    for p, enc in enumerate(encs):
        idx = batch["win_index"][batch["win_index"] >= 0]
        mine = {int(i) - p * T for i in idx if p * T <= int(i) < (p + 1) * T}
        assert mine == set(range(len(enc.input_ids)))
    assert bio_labels(encs[0], [{"start": texts[0].index("la mer"), "end": texts[0].index("la mer") + 6}]).count(1) == 1


def test_gazetteer_dropout_hides_only_labelled_span_tokens(tiny_backbone):
    fz = Featurizer(load_tokenizer(tiny_backbone), tiny_index(), max_window=64, stride=48)
    ex = labelled("maybelline mascara vs l'oreal which one?", ("maybelline", "Maybelline", "makeup"),
                  ("l'oreal", "L'Oréal Paris", "makeup"))
    enc = fz.encode(ex.text)
    assert sum(1 for g in enc.gaz if g) >= 2
    assert drop_gazetteer(enc, ex.spans, random.Random(0), 0.0) is enc
    hidden = drop_gazetteer(enc, ex.spans, random.Random(0), 1.0)
    assert not any(hidden.gaz) and any(enc.gaz)  # the cached encoding is left untouched
    assert hidden.input_ids == enc.input_ids and hidden.offsets == enc.offsets
    changed = sum(drop_gazetteer(enc, ex.spans, random.Random(seed), 0.5).gaz != enc.gaz for seed in range(200))
    assert 100 < changed < 190  # at p=0.5 a post with 2 spans keeps both features 1 time in 4


def test_a_trained_student_names_a_mined_brand_unlinked(overfit):
    """The overfit run's training labels name CeraVe, which the tiny KB lacks: the artifact's index has it."""
    predictor = StudentPredictor.load(overfit["dir"])
    assert "cerave" in predictor.index.by_key and is_mined(predictor.index.by_key["cerave"])
    pred = predictor.predict(["Got the new @cerave cleanser and it is so gentle"])[0]
    span = pred["brands"][0]
    assert span["text"] == "cerave" and span["brand"] == "CeraVe"
    assert span["brand_id"] is None and span["link"] == "lexicon"


def test_kb_decoding_keeps_the_evidence_of_a_handle_for_an_ambiguous_brand(tiny_backbone):
    """"Glow Recipe" is flagged ambiguous (a common phrase): '@glowrecipe' is written as a name, so it links."""
    from modeling.student.kbsnap import index_from_rows
    from modeling.student.train import brand_table

    index = index_from_rows([{"canonical_name": "Glow Recipe", "category": "skincare", "aliases": ["GlowRecipe"],
                              "is_ambiguous": True}])
    cfg = StudentConfig(backbone=tiny_backbone)
    brands = brand_table(index)
    fz = Featurizer(load_tokenizer(tiny_backbone), index, max_window=64, stride=48)
    predictor = StudentPredictor(build_model(cfg, len(brands)), fz, index, brands, cfg)
    pred = predictor.predict(["@glowrecipe watermelon toner is back 🍉", "my glow recipe for a lazy sunday"])
    handle = [b for b in pred[0]["brands"] if b["text"] == "glowrecipe"]
    assert handle and handle[0]["brand"] == "Glow Recipe" and handle[0]["brand_id"] is not None
    assert not [b for b in pred[1]["brands"] if b.get("brand") == "Glow Recipe"]


def test_decoding_is_tuned_on_val_and_travels_with_the_artifact(overfit):
    from modeling.student.train import DECODING_GRID, TUNE_TOLERANCE, blind_index, tune_decoding

    p = StudentPredictor.load(overfit["dir"])
    val = overfit["examples"]
    chosen = tune_decoding(p.model, p.featurizer, p.index, p.brands, p.cfg, val, "cpu")
    assert len(chosen["grid"]) == len(DECODING_GRID)
    best = max(g["val_span_f1"] for g in chosen["grid"])
    assert best - TUNE_TOLERANCE <= chosen["val_span_f1"] <= best
    # Each setting is scored with the full index (the overfit run knows these posts) and with half of
    # val's brands out of it; the choice is made on the mean of the two.
    assert max(g["val_span_f1_kb"] for g in chosen["grid"]) > 0.9
    for g in chosen["grid"]:
        assert abs(g["val_span_f1"] - (g["val_span_f1_kb"] + g["val_span_f1_blind"]) / 2) < 1e-3
    blind = blind_index(p.index, val)
    assert set(blind.by_key) < set(p.index.by_key)  # some of val's brands are really gone
    assert min(g["val_span_f1_blind"] for g in chosen["grid"]) < max(g["val_span_f1_kb"] for g in chosen["grid"])
    # Near-ties go to the lower threshold: no setting as good within the tolerance has a lower one.
    assert not [g for g in chosen["grid"] if g["val_span_f1"] >= best - TUNE_TOLERANCE
                and g["span_threshold"] < chosen["span_threshold"]]


def test_decoding_choice_takes_the_lowest_threshold_among_near_ties():
    from modeling.student.train import choose_decoding

    def row(rule, threshold, f1):
        return {"word_rule": rule, "span_threshold": threshold, "val_span_f1": f1}

    grid = [row("first", 0.8, 0.80), row("first", 0.5, 0.70), row("any", 0.8, 0.82), row("any", 0.6, 0.81),
            row("any", 0.5, 0.799), row("first", 0.6, 0.805)]
    assert choose_decoding(grid) == row("any", 0.6, 0.81)  # 0.5 is 0.021 below the best, 'first' 0.6 0.015: out
    assert choose_decoding([row("any", 0.8, 0.9), row("any", 0.4, 0.5)]) == row("any", 0.8, 0.9)


def test_model_selection_keeps_the_latest_near_tie_and_patience_counts_the_others():
    """Of evaluations within SELECT_TOLERANCE of the best val score the latest is kept (later checkpoints
    have seen more renamed mentions); patience counts the ones further below."""
    from modeling.student.train import SELECT_TOLERANCE

    model = torch.nn.Linear(1, 1)
    run = RunState()
    near = 0.80 - SELECT_TOLERANCE / 2
    for step, score in enumerate([0.70, 0.80, near, 0.70, 0.70, near, 0.70, 0.70, 0.70], start=1):
        with torch.no_grad():
            model.weight.fill_(step)
        run.record_eval(step, step / 2, {"span_f1": 0.5, "score": score}, model, ["weight"])
        if step == 5:
            assert run.best["step"] == 3 and run.bad_evals == 2  # a near-tie of 0.80 is kept; 0.70 is not
    assert run.best == {"span_f1": 0.5, "score": near, "step": 6}
    assert float(run.best_params["weight"]) == 6.0 and run.bad_evals == 3 and run.out_of_patience(3)
    plain = RunState()  # without a score (decoding not tuned): the model's own val span F1
    plain.record_eval(1, 0.5, {"span_f1": 0.6}, model, ["weight"])
    plain.record_eval(2, 1.0, {"span_f1": 0.5}, model, ["weight"])
    assert plain.best["step"] == 1 and plain.top == 0.6 and plain.bad_evals == 1


def test_silver_val_takes_a_share_of_each_platforms_silver_and_leaves_gold_alone():
    from modeling.student.train import with_silver_val

    def ex(i, platform, kind="silver"):
        return Example(id=f"{platform}-{i}", text=f"post {i}", spans=[], kind=kind, platform=platform)

    train = [ex(i, "reddit") for i in range(500)] + [ex(i, "tiktok") for i in range(60)] + [
        ex(i, "reddit", "gold") for i in range(50)]
    gold_val = [ex(999, "reddit", "gold")]
    cfg = StudentConfig(silver_val_share=0.1, silver_val_cap=40)
    kept, val, moved = with_silver_val(train, gold_val, cfg)
    by = {p: sum(e.platform == p for e in moved) for p in ("reddit", "tiktok")}
    assert by == {"reddit": 40, "tiktok": 6}  # 10% of each platform, Reddit's capped at 40
    assert all(e.kind == "silver" for e in moved) and val == gold_val + moved
    assert len(kept) == len(train) - len(moved) and not {id(e) for e in kept} & {id(e) for e in moved}
    # Deterministic, and blind to the order the examples come in.
    assert {e.id for e in with_silver_val(list(reversed(train)), gold_val, cfg)[2]} == {e.id for e in moved}
    # No val split asked for (or the share off): nothing moves.
    assert with_silver_val(train, [], cfg) == (train, [], [])
    assert with_silver_val(train, gold_val, StudentConfig(silver_val_share=0))[2] == []


def test_kb_decoding_drops_product_words_after_a_brand_and_hashtags_of_plain_words():
    from modeling.student.text import units

    p = StudentPredictor.__new__(StudentPredictor)
    p.plain_words = {"beauty", "haul", "saving", "money", "glow"}

    def dropped(text, word, brand=None):
        start = text.index(word)
        ends = {text.index(brand) + len(brand)} if brand else set()
        return p._not_a_new_brand(text, {"start": start, "end": start + len(word)}, ends, units(text))

    assert dropped("winter: Tom Ford Tobacco Vanille (a decant)", "Vanille", "Tom Ford")
    assert dropped("Kilian Love Don't Be Shy is pure marshmallow", "Shy", "Kilian")
    assert dropped("Decleor's Masque Purifiant", "Masque", "Decleor")
    assert not dropped("aftershave: Clubman or Proraso, so", "Proraso", "Clubman")  # "or": another brand
    assert not dropped("Tom Ford and then Vanille", "Vanille", "Tom Ford")
    assert not dropped("Tom Ford Tobacco Vanille", "Vanille")  # no brand before it
    assert dropped("so much stuff #beautyhaul #savingmoney", "beautyhaul")
    assert dropped("so much stuff #beautyhaul #savingmoney", "savingmoney")
    assert not dropped("new fav #glowkiss", "glowkiss")  # 'kiss' is not a plain word here
    assert not dropped("beautyhaul time", "beautyhaul")  # only hashtags are cut into words


def test_a_span_the_model_kept_counts_as_a_brand_for_the_product_words_after_it():
    """No KB match in the post: the model's own brand ("Ouai") is kept, and the product words after it are
    not added as more brands; a second brand after "and" still is."""
    from types import SimpleNamespace

    p = StudentPredictor.__new__(StudentPredictor)
    p.plain_words = set()
    text = "got Ouai Detangling Spray and Briogeo today"

    def span(word, confidence=0.9):
        start = text.index(word)
        return {"start": start, "end": start + len(word), "text": word, "confidence": confidence}

    enc = SimpleNamespace(text=text, matches=[], words=None)
    kept = p._with_kb(enc, [span("Ouai"), span("Spray"), span("Briogeo")], threshold=0.5)
    assert [s["text"] for s in kept] == ["Ouai", "Briogeo"]
    # Below the threshold "Ouai" is not kept, so nothing marks "Spray" as its product: it stands.
    assert [s["text"] for s in p._with_kb(enc, [span("Ouai", 0.4), span("Spray")], threshold=0.5)] == ["Spray"]
