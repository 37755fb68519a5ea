"""`<id:pk>` in URLs: a database id, at most 9 digits. Django's `<int:...>` takes any number of digits,
and a 30-digit id reaches the database as an overflow (a 500) instead of a 404."""

from __future__ import annotations

from django.urls import register_converter


class IdConverter:
    regex = "[0-9]{1,9}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
