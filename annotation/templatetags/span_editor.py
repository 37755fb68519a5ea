"""Template tags of the span editor."""

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()


@register.simple_tag(takes_context=True)
def category_chips(context, span, categories, change_url: str):
    """The category chips of a span row, keyed 1, 2, ... in the order of `categories`; the span's own
    category is on. Each save re-renders the whole span list, and written as template markup the chips
    (eight variables each, times categories, times spans) took most of its rendering time: so the part
    that does not depend on the span is escaped and built once per render, here."""
    key = ("category_chips", id(categories), change_url)
    chips = context.render_context.get(key)
    if chips is None:
        url = escape(change_url)
        chips = context.render_context[key] = [
            (c.pk, f'" data-cat="{n}" hx-post="{url}" hx-vals=\'{{"category_id": {int(c.pk)}}}\''
                   f' title="{escape(c.name)} ({n})"><kbd>{n}</kbd>{escape(c.name)}</button>')
            for n, c in enumerate(categories, 1)
        ]
    on = span.category_id
    # Safe: every part above is escaped or an integer.
    return mark_safe("".join(f'<button type="button" class="cat{" on" if pk == on else ""}{rest}'
                             for pk, rest in chips))


@register.filter
def is_web_url(value) -> bool:
    """Only http(s) addresses become links: a post's url is imported data, and `javascript:` runs on click."""
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))
