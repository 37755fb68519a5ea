"""Backbone (`AutoModel`) + task heads; LoRA via peft with the heads in `modules_to_save`.

Heads: BIO tagging; brand count 0/1/2/3+; attention pooling per span; multi-head attention across a
post's spans → category per span; contrastive alignment of span vectors with brand embeddings (KB
linking); post-level is_beauty. Per-token gazetteer and casing embeddings are added to the input
embeddings (the backbone reads them in context) and the gazetteer one again to the output states.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from .config import BIO, BRAND_COUNT_CLASSES, CASE_TAGS, CATEGORIES, GAZ_TAGS, StudentConfig

HEAD_NAMES = ["gaz_in", "case_in", "char_in", "gaz_out", "tag_head", "post_pool", "count_head", "beauty_head",
              "span_pool", "span_attn", "span_norm", "category_head", "align_proj", "brand_emb"]


class StudentModel(nn.Module):
    def __init__(self, backbone: nn.Module, n_brands: int, cfg: StudentConfig):
        super().__init__()
        self.backbone = backbone
        d = backbone.config.hidden_size
        self.hidden = d
        self.dropout = nn.Dropout(0.1)
        self.gaz_in = nn.Embedding(len(GAZ_TAGS), d)
        self.case_in = nn.Embedding(len(CASE_TAGS), d)
        self.gaz_out = nn.Embedding(len(GAZ_TAGS), d)
        # Characters the backbone's vocabulary writes as [UNK] (encoding.char_bucket), learnt from scratch.
        self.char_in = nn.Embedding(cfg.char_buckets, d) if cfg.char_buckets else None
        for emb in (self.gaz_in, self.case_in, self.gaz_out, self.char_in):
            if emb is not None:
                nn.init.normal_(emb.weight, std=0.02)
        self.tag_head = nn.Linear(d, len(BIO))
        self.post_pool = nn.Linear(d, 1)
        self.count_head = nn.Linear(d + 1, BRAND_COUNT_CLASSES)
        self.beauty_head = nn.Linear(d, 2)
        self.span_pool = nn.Linear(d, 1)
        heads = max(1, min(cfg.span_heads, d // 16))
        while d % heads:
            heads -= 1
        self.span_attn = nn.MultiheadAttention(d, heads, batch_first=True, dropout=0.1)
        self.span_norm = nn.LayerNorm(d)
        self.category_head = nn.Linear(d, len(CATEGORIES))
        self.align_proj = nn.Linear(d, d)
        with torch.no_grad():
            self.align_proj.weight.copy_(torch.eye(d))
            self.align_proj.bias.zero_()
        self.brand_emb = nn.Embedding(max(1, n_brands), d)
        self.temperature = cfg.align_temperature

    # -- encoder -------------------------------------------------------------------------------
    def encode(self, batch: dict) -> torch.Tensor:
        """Windows → backbone → states merged back per post token: [posts, tokens, hidden]."""
        embed = self.backbone.get_input_embeddings()
        x = embed(batch["win_ids"]) + self.gaz_in(batch["win_gaz"]) + self.case_in(batch["win_case"])
        if self.char_in is not None:
            x = x + self.char_in(batch["win_char"])
        out = self.backbone(inputs_embeds=x, attention_mask=batch["win_mask"])
        states = out.last_hidden_state  # [W, L, D]
        P, T = batch["post_mask"].shape
        flat_index = batch["win_index"].reshape(-1)
        keep = flat_index >= 0
        merged = states.new_zeros(P * T, states.shape[-1])
        counts = states.new_zeros(P * T, 1)
        merged.index_add_(0, flat_index[keep], states.reshape(-1, states.shape[-1])[keep])
        counts.index_add_(0, flat_index[keep], states.new_ones(int(keep.sum()), 1))
        merged = merged / counts.clamp(min=1)
        return merged.view(P, T, -1) + self.gaz_out(batch["post_gaz"])

    def post_outputs(self, H: torch.Tensor, post_mask: torch.Tensor) -> dict:
        tags = self.tag_head(self.dropout(H))
        scores = self.post_pool(H).squeeze(-1).masked_fill(~post_mask, -1e4)
        post_vec = torch.einsum("pt,ptd->pd", scores.softmax(-1), H)
        # Softmax pooling averages: it cannot count. The tagger's expected number of span starts can, so the
        # count head reads it beside the pooled state (detached: counting must not bend the tagger).
        starts = tags.detach().softmax(-1)[..., BIO.index("B")].masked_fill(~post_mask, 0.0).sum(-1, keepdim=True)
        count_in = torch.cat([self.dropout(post_vec), torch.log1p(starts)], dim=-1)
        return {"tag_logits": tags, "post_vec": post_vec, "count_logits": self.count_head(count_in),
                "beauty_logits": self.beauty_head(self.dropout(post_vec))}

    def span_outputs(self, H: torch.Tensor, post_vec: torch.Tensor, span_index: torch.Tensor,
                     span_mask: torch.Tensor) -> dict:
        """span_index [P, S, 2] token [start, end); span_mask [P, S] marks real spans."""
        P, T, D = H.shape
        positions = torch.arange(T, device=H.device).view(1, 1, T)
        inside = (positions >= span_index[..., :1]) & (positions < span_index[..., 1:]) & span_mask[..., None]
        scores = self.span_pool(H).squeeze(-1)[:, None, :].expand(-1, span_index.shape[1], -1)
        weights = scores.masked_fill(~inside, -1e4).softmax(-1) * inside
        span_vec = torch.einsum("pst,ptd->psd", weights, H)
        x = span_vec + post_vec[:, None, :]
        # A row with no real span would give attention nothing to attend to: let it see itself.
        pad = ~span_mask
        pad = pad & ~(pad.all(-1, keepdim=True) & (torch.arange(pad.shape[1], device=H.device) == 0))
        attended, _ = self.span_attn(x, x, x, key_padding_mask=pad)
        y = self.span_norm(x + attended)
        z = F.normalize(self.align_proj(span_vec), dim=-1)
        brands = F.normalize(self.brand_emb.weight, dim=-1)
        return {"category_logits": self.category_head(self.dropout(y)), "align_sim": z @ brands.T}

    def forward(self, batch: dict) -> dict:
        H = self.encode(batch)
        out = self.post_outputs(H, batch["post_mask"])
        if "span_index" in batch:
            out.update(self.span_outputs(H, out["post_vec"], batch["span_index"], batch["span_mask"]))
        return out


def lora_targets(backbone_config) -> list[str]:
    """Attention projections by architecture: q_proj/v_proj (Qwen2, Llama...), query/value (BERT-style)."""
    kind = getattr(backbone_config, "model_type", "")
    if kind in {"bert", "roberta", "xlm-roberta", "electra", "camembert", "mpnet", "deberta", "deberta-v2"}:
        return ["query", "value"] if kind not in {"mpnet", "deberta", "deberta-v2"} else ["q", "v"]
    return ["q_proj", "v_proj"]


def lora_config(cfg: StudentConfig, backbone_config):
    from peft import LoraConfig

    names = "|".join(re.escape(t) for t in lora_targets(backbone_config))
    heads = [n for n in HEAD_NAMES if n != "char_in" or cfg.char_buckets]
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=rf".*backbone\..*\.({names})$", modules_to_save=heads)


def layer_list(backbone: nn.Module) -> nn.ModuleList:
    n = backbone.config.num_hidden_layers
    for _, module in backbone.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise ValueError("cannot find the transformer layers of this backbone")


def last_layer_names(model: nn.Module, n_last: int) -> set[str]:
    """Parameter names (as in `model.named_parameters()`) of the last n layers' own weights, LoRA excluded."""
    student = unwrap(model)
    layers = layer_list(student.backbone)
    n = min(n_last, len(layers))
    wanted = {id(p) for layer in list(layers)[len(layers) - n:] for p in layer.parameters()}
    return {name for name, p in model.named_parameters() if id(p) in wanted and "lora_" not in name}


def unwrap(model: nn.Module) -> StudentModel:
    while not isinstance(model, StudentModel):
        model = model.base_model.model if hasattr(model, "base_model") else model.model
    return model


def set_trainable(model: nn.Module, groups: tuple[str, ...], n_last: int) -> int:
    """Exactly the named groups train; returns the number of trainable parameters."""
    last = last_layer_names(model, n_last) if "last_layers" in groups else set()
    total = 0
    for name, p in model.named_parameters():
        on = (("lora" in groups and "lora_" in name)
              or ("heads" in groups and "modules_to_save" in name)
              or name in last)
        p.requires_grad_(on)
        total += p.numel() if on else 0
    return total


def trainable_groups_of(model: nn.Module, n_last: int) -> set[str]:
    """Which groups currently train (for tests and the generation page)."""
    last = last_layer_names(model, n_last)
    found = set()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if "lora_" in name:
            found.add("lora")
        elif "modules_to_save" in name:
            found.add("heads")
        elif name in last:
            found.add("last_layers")
        else:
            found.add("other")
    return found
