"""Views of the annotation workflow: work queue, span editor, review, agreement, progress.
Thin: parse the request, call a service or selector, render a page or one of its partials."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from annotation.models import Annotation, Assignment, Post
from beautybrain_app.roles import Role, has_role, role_required
from annotation.selectors import (
    agreement_report, editor_annotation, editor_state, my_history, progress_report, review_queue, review_state,
)
from annotation.services.editor import (
    EditConflict, EditError, annotation_change, annotation_for_editing, annotation_reopen, annotation_submit,
    annotation_undo, can_reopen, is_read_only,
)
from annotation.services.queue import assignment_release, assignment_renew, queue_next
from annotation.services.review import ReviewError, gold_accept, gold_merge, shown_parse
from annotation.tokens import tokenize

EDITORS = (Role.ANNOTATOR, Role.REVIEWER, Role.ADMIN)
REVIEWERS = (Role.REVIEWER, Role.ADMIN)
# Request fields that are not part of the change itself.
# Changes whose answer is the span list alone; the others re-render the whole side panel.
SPAN_LIST_OPS = {"add", "delete", "update"}
_META_FIELDS = {"version", "active_ms", "csrfmiddlewaretoken", "focus", "gold"}


# --- queue ------------------------------------------------------------------------------------

@role_required(*EDITORS)
def queue(request):
    post = queue_next(user=request.user)
    if post is None:
        progress = progress_report()
        if not has_role(request.user, *REVIEWERS):  # an annotator sees their own row, not their colleagues'
            progress["annotators"] = [p for p in progress["annotators"] if p["name"] == request.user.username]
        return render(request, "annotation/queue_empty.html", {"progress": progress})
    return redirect("editor", post_id=post.pk)


@role_required(*EDITORS)
@require_POST
def queue_skip(request, post_id: int):
    assignment_release(user=request.user, post_id=post_id)
    return _client_redirect(request, reverse("queue"))


# --- editor -----------------------------------------------------------------------------------

def _editable(request, post_id: int) -> Annotation:
    """The annotation this user edits on this post: their own; the gold one for reviewers (?gold=1).
    An annotator opens a post only through the queue (an assignment) or their own earlier work."""
    wants_gold = (request.GET.get("gold") or request.POST.get("gold")) == "1"
    if wants_gold:
        if not has_role(request.user, *REVIEWERS):
            raise PermissionDenied("Only reviewers edit gold annotations.")
        gold = editor_annotation(post_id=post_id, annotator_id=None)
        if gold is None:
            raise Http404("This post has no gold annotation yet.")
        return gold
    own = editor_annotation(post_id=post_id, annotator_id=request.user.pk)
    if own is not None:
        return own
    post = get_object_or_404(Post, pk=post_id)
    if not has_role(request.user, *REVIEWERS) and not Assignment.objects.filter(
        post=post, annotator=request.user
    ).exists():
        raise PermissionDenied("This post is not assigned to you; take the next one from the queue.")
    annotation = annotation_for_editing(user=request.user, post=post)
    annotation.post = post
    return annotation


def _urls(annotation: Annotation) -> dict:
    suffix = "?gold=1" if annotation.is_gold else ""
    pk = annotation.post_id
    return {
        "change_url": reverse("editor_change", args=[pk]) + suffix, "undo_url": reverse("editor_undo", args=[pk]) + suffix,
        "submit_url": reverse("editor_submit", args=[pk]) + suffix, "reopen_url": reverse("editor_reopen", args=[pk]),
    }


def _panel_context(annotation: Annotation, **extra) -> dict:
    return {
        "annotation": annotation, "post": annotation.post, "read_only": is_read_only(annotation),
        "can_reopen": can_reopen(annotation),
        **_urls(annotation), **editor_state(annotation=annotation), **extra,
    }


@role_required(*EDITORS)
def editor(request, post_id: int):
    annotation = _editable(request, post_id)
    if annotation.post.get_deferred_fields():  # the page shows the whole post, the saves only need its text
        annotation.post = get_object_or_404(Post, pk=post_id)
    if not annotation.is_gold:
        assignment_renew(user=request.user, post_id=post_id)
    history = my_history(user=request.user)
    here = history.index(post_id) if post_id in history else len(history)
    context = _panel_context(
        annotation,
        tokens=tokenize(annotation.post.text),
        prev_post=history[here - 1] if here > 0 else None,
        next_post=history[here + 1] if here + 1 < len(history) else None,
    )
    return render(request, "annotation/editor.html", context)


def _active_seconds(request) -> float:
    try:
        return float(request.POST.get("active_ms") or 0) / 1000
    except ValueError:
        return 0.0


def _version(request) -> int:
    try:
        return int(request.POST.get("version", ""))
    except ValueError:
        return -1


def _panel(request, annotation, *, status=200, **extra):
    return render(request, "annotation/editor.html#panel", _panel_context(annotation, **extra), status=status)


def _conflict(request, exc: EditConflict, op: dict):
    fresh = Annotation.objects.select_related("post").get(pk=exc.annotation.pk)
    return _panel(request, fresh, status=409, conflict={"op": op, "json": json.dumps(op), "label": _describe(op, fresh)})


def _describe(op: dict, annotation: Annotation) -> str:
    """The rejected change in words, so the annotator knows what to re-apply."""
    kind = op.get("op")
    text = annotation.post.text
    try:
        quoted = f"“{text[int(op['start']):int(op['end'])]}”"
    except (KeyError, TypeError, ValueError):
        quoted = ""
    return {
        "add": f"mark {quoted} as a brand", "delete": f"delete the span {quoted}", "update": f"change {quoted}",
        "accept": f"accept the {op.get('source')} suggestion {quoted}", "accept_all": f"accept all {op.get('source')} suggestions",
        "flag": "change the post flags", "dismiss": "reject a suggestion", "undo": "undo", "submit": "submit",
    }.get(kind, str(kind))


@role_required(*EDITORS)
@require_POST
def editor_change(request, post_id: int):
    annotation = _editable(request, post_id)
    op = {k: v for k, v in request.POST.items() if k not in _META_FIELDS}
    try:
        applied = annotation_change(annotation=annotation, version=_version(request), op=op,
                                    active_seconds=_active_seconds(request))
    except EditConflict as exc:
        return _conflict(request, exc, op)
    except EditError as exc:
        annotation.refresh_from_db()
        return _panel(request, annotation, status=422, error=str(exc))
    created = applied.inverse[0] if applied.inverse and applied.inverse[0]["op"] == "delete" else None
    focus = f"{created['start']}:{created['end']}" if created else request.POST.get("focus", "")
    if op.get("op") in SPAN_LIST_OPS:
        # Only the span list changed: render just it (the suggestions' accepted/open marks follow in
        # the browser from the spans present), so the save that annotators make most stays cheap.
        response = render(request, "annotation/editor.html#spans-section", {
            "annotation": applied.annotation, "spans": applied.spans, "categories": applied.categories,
            "read_only": False, "saved": applied.message, "focus": focus, **_urls(applied.annotation),
        })
        return reswap(retarget(response, "#spans-section"), "outerHTML")
    return _panel(request, applied.annotation, saved=applied.message, focus=focus)


@role_required(*EDITORS)
@require_POST
def editor_undo(request, post_id: int):
    annotation = _editable(request, post_id)
    try:
        applied = annotation_undo(annotation=annotation, version=_version(request), active_seconds=_active_seconds(request))
    except EditConflict as exc:
        return _conflict(request, exc, {"op": "undo"})
    except EditError as exc:
        return _panel(request, annotation, status=422, error=str(exc))
    return _panel(request, applied.annotation, saved=applied.message)


@role_required(*EDITORS)
@require_POST
def editor_submit(request, post_id: int):
    annotation = _editable(request, post_id)
    try:
        annotation_submit(annotation=annotation, version=_version(request), active_seconds=_active_seconds(request))
    except EditConflict as exc:
        return _conflict(request, exc, {"op": "submit"})
    except EditError as exc:
        return _panel(request, annotation, status=422, error=str(exc))
    if annotation.is_gold:
        messages.success(request, "Gold annotation saved.")
        return _client_redirect(request, reverse("review_detail", args=[post_id]))
    return _client_redirect(request, reverse("queue"))


@role_required(*EDITORS)
@require_POST
def editor_reopen(request, post_id: int):
    annotation = _editable(request, post_id)
    try:
        annotation = annotation_reopen(annotation=annotation, version=_version(request))
    except EditConflict as exc:
        return _conflict(request, exc, {"op": "reopen"})
    except EditError as exc:
        return _panel(request, annotation, status=422, error=str(exc))
    return _panel(request, annotation, saved="reopened: submit again when done")


@role_required(*EDITORS)
def editor_help(request):
    """The keyboard shortcut overlay, loaded the first time `?` is pressed."""
    return render(request, "annotation/editor.html#help")


def _client_redirect(request, url: str):
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


# --- review -----------------------------------------------------------------------------------

@role_required(*REVIEWERS)
def review_list(request):
    try:
        page = max(1, int(request.GET.get("page", 1)))
    except ValueError:
        page = 1
    per_page = 50
    posts, total = review_queue(limit=per_page, offset=(page - 1) * per_page)
    return render(request, "annotation/review_list.html", {
        "posts": posts, "total": total, "page": page,
        "has_next": page * per_page < total, "has_prev": page > 1,
    })


@role_required(*REVIEWERS)
def review_detail(request, post_id: int):
    post = get_object_or_404(Post, pk=post_id)
    state = review_state(post=post)
    # The versions this page shows (what shown_versions would read), sent back with accept or merge.
    shown = {c["annotation"].pk: c["annotation"].version for c in state["columns"]}
    if state["gold"] is not None:
        shown[0] = state["gold"].version
    return render(request, "annotation/review_detail.html", {
        "post": post, "tokens": tokenize(post.text), **state,
        "shown": ",".join(f"{k}:{v}" for k, v in sorted(shown.items())),
    })


@role_required(*REVIEWERS)
@require_POST
def review_accept(request, post_id: int, annotation_id: int):
    annotation = get_object_or_404(Annotation.objects.select_related("post"), pk=annotation_id, post_id=post_id)
    try:
        gold_accept(annotation=annotation, reviewer=request.user, shown=shown_parse(request.POST.get("shown", "")))
    except ReviewError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{annotation.annotator.get_username()}'s annotation is now the gold one.")
    return redirect("review_detail", post_id=post_id)


@role_required(*REVIEWERS)
@require_POST
def review_merge(request, post_id: int):
    post = get_object_or_404(Post, pk=post_id)
    beauty = request.POST.get("is_beauty")
    try:
        gold_merge(post=post, reviewer=request.user, span_ids=[int(i) for i in request.POST.getlist("span") if i.isdigit()],
                   is_beauty=None if beauty is None else beauty == "true", shown=shown_parse(request.POST.get("shown", "")),
                   confirm_empty=request.POST.get("confirm_empty") == "1")
    except ReviewError as exc:
        messages.error(request, str(exc))
        return redirect("review_detail", post_id=post_id)
    messages.success(request, "Merged into the gold annotation.")
    if request.POST.get("then") == "edit":
        return redirect(f"{reverse('editor', args=[post_id])}?gold=1")
    return redirect("review_detail", post_id=post_id)


@role_required(*REVIEWERS)
def agreement(request):
    return render(request, "annotation/agreement.html", {"report": agreement_report()})


@role_required(*REVIEWERS)
def progress(request):
    return render(request, "annotation/progress.html", {"progress": progress_report()})
