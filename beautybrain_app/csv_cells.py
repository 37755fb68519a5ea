"""Cells of the CSV files we hand out (reports, the KB export), so a spreadsheet opens them safely."""

from __future__ import annotations

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection); a leading
# apostrophe makes it text. Only strings are escaped: the numbers we write (a negative change) stay numbers.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FORMULA_FIRST = frozenset(FORMULA_PREFIXES)
# Excel reads a CSV without a byte-order mark as the local code page: "Lancôme" comes out "LancÃ´me".
BOM = "\ufeff"


def cell_safe(value):
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def cell_unescape(value: str) -> str:
    """What `cell_safe` wrote, read back: an exported file imports as it was."""
    return value[1:] if value[:1] == "'" and value[1:2] in FORMULA_FIRST and value[1:2] else value


def with_bom(chunks):
    """A streamed CSV with the byte-order mark in its first chunk (the header goes out alone, at once)."""
    first = True
    for chunk in chunks:
        yield BOM + chunk if first else chunk
        first = False
