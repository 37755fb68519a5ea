"""Dataset files without Django: what a frozen version exports and how training code reads it.

Import from here in training code (`from annotation.datasets import read_split, bio_encode, ...`);
nothing in this package touches the ORM or settings, so it runs in a bare Python process.

- `interchange`: the JSONL interchange format (one post per line), canonical lines, the manifest.
- `splits`: train/val/test by a hash of the post's content hash.
- `bio`: token-level BIO tags for a Hugging Face fast tokenizer, CoNLL-style files.
- `diff`: what changed between two versions, from two streams of items.
"""

from annotation.datasets.bio import (
    BIO_RULE,
    BioExample,
    bio_decode,
    bio_encode,
    bio_encode_batch,
    load_tokenizer,
    read_conll,
    write_conll,
)
from annotation.datasets.diff import diff_items
from annotation.datasets.interchange import (
    EXPORT_FILES,
    SPLIT_FILES,
    canonical_line,
    content_hash,
    read_jsonl,
    read_manifest,
    read_split,
    version_sha256,
)
from annotation.datasets.splits import SPLITS, normalise_ratios, split_bucket, split_for

__all__ = [
    "BIO_RULE", "BioExample", "bio_decode", "bio_encode", "bio_encode_batch", "load_tokenizer", "read_conll",
    "write_conll", "diff_items", "EXPORT_FILES", "SPLIT_FILES", "canonical_line", "content_hash", "read_jsonl",
    "read_manifest", "read_split", "version_sha256", "SPLITS", "normalise_ratios", "split_bucket", "split_for",
]
