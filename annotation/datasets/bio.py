"""Token-level BIO tags from character spans, for a Hugging Face fast tokenizer.

Tokens come with their character offsets into the text (a fast tokenizer's offset mapping,
Python `str` code-point offsets, so emoji and CJK count as one character each). Tags are decided
by character overlap, never by re-tokenising the span text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator, Mapping, Sequence

BIO_RULE = (
    "A token belongs to a span when they share at least one character (token [ts, te) and span [s, e) "
    "overlap: ts < e and s < te). The first token of a span is B-BRAND, the following tokens of the same "
    "span are I-BRAND, other tokens are O. A span that starts or ends inside a token (e.g. 'ordinary' in "
    "'theordinary' tokenised 'theo' '##rdi' '##nary') therefore takes the whole token: 'theo' is B-BRAND "
    "and decoding the tags gives the token-aligned span [token start, token end), wider than the exact "
    "character span (counted as 'widened'; the JSONL keeps the exact offsets). A token that overlaps "
    "two spans starts the second one (B-BRAND) if it was not started yet, else continues the latest "
    "started one; a span left with no token of its own (it lies inside a token already given to the "
    "previous span) cannot be represented and is counted as 'lost'. Token offsets are first trimmed of "
    "surrounding whitespace (byte-level BPE tokens such as 'Ġtheordinary' carry their leading space), so "
    "decoded spans never start with a space; a whitespace-only token gets empty offsets, and I-BRAND "
    "when it lies inside the span being tagged (so a span's tags stay contiguous), else O. Every "
    "token of tokenizer(text, add_special_tokens=False) is listed, in order, so line i of a post is "
    "input id i. The 5th CoNLL column is the category of the token's span ('-' for O)."
)
OUTSIDE, BEGIN, INSIDE = "O", "B-BRAND", "I-BRAND"


@dataclass
class BioExample:
    tokens: list[str]
    offsets: list[tuple[int, int]]
    tags: list[str]
    categories: list[str | None]
    widened: int = 0
    lost: int = 0
    spans: int = 0
    lost_spans: list[tuple[int, int]] = field(default_factory=list)


def load_tokenizer(name_or_path: str | Path):
    """A fast tokenizer from a local directory or the local Hugging Face cache (never downloads)."""
    from transformers import AutoTokenizer  # heavy; only BIO export needs it

    tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), local_files_only=True)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{name_or_path} has no fast tokenizer; BIO export needs its offset mapping")
    return tokenizer


def _tokenize(tokenizer, texts: Sequence[str]) -> list[tuple[list[str], list[tuple[int, int]]]]:
    if hasattr(tokenizer, "encode_batch") and not hasattr(tokenizer, "convert_ids_to_tokens"):
        # A bare `tokenizers.Tokenizer` (e.g. trained locally in tests).
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [(list(e.tokens), [tuple(o) for o in e.offsets]) for e in encodings]
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [
        (tokenizer.convert_ids_to_tokens(ids), [tuple(o) for o in offsets])
        for ids, offsets in zip(enc["input_ids"], enc["offset_mapping"])
    ]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else (start, start)


def tag_tokens(text: str, tokens: list[str], offsets: list[tuple[int, int]], spans: Iterable[Mapping]) -> BioExample:
    spans = sorted(spans, key=lambda s: (s["start"], s["end"]))
    trimmed = [_trim(text, s, e) for s, e in offsets]
    first: dict[int, int] = {}  # span index -> first token index
    last: dict[int, int] = {}
    tags: list[str] = []
    cats: list[str | None] = []
    current: int | None = None  # the span the previous token belonged to
    for ti, ((ts, te), (os_, oe)) in enumerate(zip(trimmed, offsets)):
        if te == ts:
            # Whitespace-only (or special) token: I inside the open span, so a span's tags stay contiguous.
            inside = current is not None and spans[current]["start"] <= os_ and oe < spans[current]["end"]
            tags.append(INSIDE if inside else OUTSIDE)
            cats.append(spans[current].get("category") or None if inside else None)
            if not inside:
                current = None
            continue
        overlapping = [k for k, sp in enumerate(spans) if ts < sp["end"] and sp["start"] < te]
        new = [k for k in overlapping if k not in first]
        if new:
            current = new[0]
            first[current] = last[current] = ti
            tags.append(BEGIN)
        elif overlapping:
            current = max(overlapping, key=lambda j: first[j])
            last[current] = ti
            tags.append(INSIDE)
        else:
            current = None
            tags.append(OUTSIDE)
            cats.append(None)
            continue
        cats.append(spans[current].get("category") or None)
    example = BioExample(tokens=list(tokens), offsets=trimmed, tags=tags, categories=cats, spans=len(spans))
    for k, sp in enumerate(spans):
        if k not in first:
            example.lost += 1
            example.lost_spans.append((sp["start"], sp["end"]))
        elif trimmed[first[k]][0] != sp["start"] or trimmed[last[k]][1] != sp["end"]:
            example.widened += 1
    return example


def bio_encode(text: str, spans: Iterable[Mapping], tokenizer) -> BioExample:
    return bio_encode_batch([text], [spans], tokenizer)[0]


def bio_encode_batch(texts: Sequence[str], spans_list: Sequence[Iterable[Mapping]], tokenizer) -> list[BioExample]:
    return [tag_tokens(text, tokens, offsets, spans)
            for text, (tokens, offsets), spans in zip(texts, _tokenize(tokenizer, texts), spans_list)]


def bio_decode(offsets: Sequence[tuple[int, int]], tags: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans back from tags (token-aligned); an I after O opens a span, as seqeval does."""
    out: list[tuple[int, int]] = []
    current: list[int] | None = None
    for (s, e), tag in zip(offsets, tags):
        if s == e and tag != BEGIN:
            continue  # whitespace-only token: it neither extends nor ends a span
        if tag.startswith("B-") or (tag.startswith("I-") and current is None):
            if current:
                out.append(tuple(current))
            current = [s, e]
        elif tag.startswith("I-"):
            current[1] = e
        else:
            if current:
                out.append(tuple(current))
            current = None
    if current:
        out.append(tuple(current))
    return out


def _escape(token: str) -> str:
    return token.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r").replace(" ", "\\s")


def _unescape(token: str) -> str:
    out, i = [], 0
    table = {"t": "\t", "n": "\n", "r": "\r", "s": " ", "\\": "\\"}
    while i < len(token):
        if token[i] == "\\" and i + 1 < len(token):
            out.append(table.get(token[i + 1], token[i + 1]))
            i += 2
        else:
            out.append(token[i])
            i += 1
    return "".join(out)


def write_conll(stream: IO[str], post_id: str, example: BioExample) -> None:
    """One post: '# id = …', then TOKEN START END TAG CATEGORY per line (tab-separated), then a blank line."""
    stream.write(f"# id = {post_id}\n")
    for token, (s, e), tag, cat in zip(example.tokens, example.offsets, example.tags, example.categories):
        stream.write(f"{_escape(token)}\t{s}\t{e}\t{tag}\t{cat or '-'}\n")
    stream.write("\n")


def read_conll(path: str | Path) -> Iterator[dict]:
    """Posts of a CoNLL file written by `write_conll`: {"id", "tokens", "offsets", "tags", "categories"}."""
    post: dict | None = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# id = "):
                post = {"id": line[7:], "tokens": [], "offsets": [], "tags": [], "categories": []}
            elif not line:
                if post is not None:
                    yield post
                post = None
            else:
                token, s, e, tag, cat = line.split("\t")
                post["tokens"].append(_unescape(token))
                post["offsets"].append((int(s), int(e)))
                post["tags"].append(tag)
                post["categories"].append(None if cat == "-" else cat)
    if post is not None:
        yield post
