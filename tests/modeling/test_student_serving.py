"""Serving the student at its backbone's speed without changing a prediction: one dictionary pass per post,
encoder calls cut by length, LoRA merged at load (modeling/student/predict.py)."""

from __future__ import annotations

import pytest
import torch

import modeling.student.predict as predict_module
from modeling.student.config import StudentConfig
from modeling.student.encoding import Featurizer
from modeling.student.predict import StudentPredictor, length_groups
from modeling.student.train import load_model, train_student

from .student_factories import build_tiny_qwen2, social_examples, tiny_index

TEXTS = [
    "I love my SK2 essence and La Mer cream",
    "maybelline mascara vs l'oreal which one?",
    "雅诗兰黛小棕瓶 真的好用 推荐",
    "ok",
    "Clinique's moisturizer broke me out, switching to CeraVe " * 6,  # several windows
    "my #esteelauder night serum is the best ✨",
    "weather is nice today, going to the park with friends",
    "Trying ColourPop and KVD eyeshadow palettes 🔥 " * 3,
]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    torch.set_num_threads(1)
    backbone = build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))
    out = tmp_path_factory.mktemp("serving")
    cfg = StudentConfig(backbone=backbone, epochs=4, batch_size=4, lr_scale=8.0, max_window=16, window_stride=10,
                        eval_every_epochs=1000, checkpoint_every_steps=10_000, seed=13)
    train_student(cfg, social_examples(), [], tiny_index(), out)
    return out


def _spans(preds):
    return [[(b["start"], b["end"], b["brand"], b["link"]) for b in p["brands"]] for p in preds]


def test_one_dictionary_pass_per_post(artifact):
    predictor = StudentPredictor.load(artifact)
    gazetteer = predictor.featurizer.gazetteer
    seen = []
    find = gazetteer.find
    gazetteer.find = lambda text: seen.append(text) or find(text)
    preds = predictor.predict(TEXTS)
    assert sorted(seen) == sorted(TEXTS)
    # The featurizer's matches are the decoded KB spans: SK2 and La Mer are found in the first post.
    found = [(b["text"], b["link"]) for b in preds[0]["brands"]]
    assert ("SK2", "exact") in found and ("La Mer", "exact") in found


def test_predictions_do_not_depend_on_how_posts_are_batched(artifact, monkeypatch):
    predictor = StudentPredictor.load(artifact)
    calls = []

    def cut(sizes):  # cheap calls: the tiny backbone's 16-token windows cut into several
        calls.append(length_groups(sizes, call_tokens=4))
        return calls[-1]

    monkeypatch.setattr(predict_module, "length_groups", cut)
    cut_by_length = predictor.predict(TEXTS)  # one batch of 8 posts
    assert len(calls) == 1 and len(calls[0]) > 1
    alone = [predictor.predict([t])[0] for t in TEXTS]
    monkeypatch.setattr(predict_module, "length_groups", lambda sizes: [range(len(sizes))])
    one_call = predictor.predict(TEXTS)
    assert _spans(cut_by_length) == _spans(alone) == _spans(one_call)
    assert any(_spans(cut_by_length))
    for a, b, c in zip(cut_by_length, alone, one_call):
        assert a["beauty_score"] == pytest.approx(b["beauty_score"], abs=1e-3)
        assert a["beauty_score"] == pytest.approx(c["beauty_score"], abs=1e-3)


def test_length_groups_keep_order_and_pad_short_posts_no_more():
    sizes = [(1, 6)] * 10 + [(3, 16)]
    groups = length_groups(sizes, call_tokens=8)
    assert [i for g in groups for i in g] == list(range(len(sizes)))
    assert groups[-1] == range(10, 11)  # the long post is its own call: the short ones pad to 6, not 16
    assert length_groups(sizes, call_tokens=10_000) == [range(len(sizes))]  # a costly call: one call
    assert length_groups([]) == []


def test_lora_is_merged_at_load_and_gives_the_adapter_s_outputs(artifact):
    merged = StudentPredictor.load(artifact)
    assert not any("lora_" in name for name, _ in merged.model.named_parameters())
    cfg = merged.cfg
    model, tokenizer = load_model(artifact, cfg, len(merged.brands))
    assert any("lora_" in name for name, _ in model.named_parameters())
    featurizer = Featurizer.for_config(tokenizer, merged.index, cfg)
    adapter = StudentPredictor(model, featurizer, merged.index, merged.brands, cfg)
    for a, b in zip(merged.tag_logprobs(TEXTS)[1], adapter.tag_logprobs(TEXTS)[1]):
        assert torch.allclose(a, b, atol=1e-4)
