"""CSV writing shared by the download views and `manage.py export_report`."""

from __future__ import annotations

import csv
from typing import IO, Iterable, Iterator

from beautybrain_app.csv_cells import FORMULA_FIRST, cell_safe

FLUSH_BYTES = 64 * 1024


class _Line:
    """csv.writer target that hands back what it was given instead of storing it."""

    def write(self, value: str) -> str:
        return value


def csv_chunks(header: list[str], rows: Iterable[list]) -> Iterator[str]:
    """The header alone first (so a download starts at once), then rows in ~64 KB pieces."""
    writer = csv.writer(_Line())
    yield writer.writerow(header)
    buffer, size = [], 0
    for row in rows:
        # cell_safe() inlined: this runs for every cell of a million-row export.
        line = writer.writerow([
            "" if v is None else "'" + v if isinstance(v, str) and v[:1] in FORMULA_FIRST else v for v in row
        ])
        buffer.append(line)
        size += len(line)
        if size >= FLUSH_BYTES:
            yield "".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer)


def csv_write(out: IO[str], header: list[str], rows: Iterable[list]) -> int:
    """Write a report to a text file; returns the number of data rows."""
    writer = csv.writer(out)
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow([cell_safe(v) for v in row])
        count += 1
    return count
