"""The demo set-up `make run` performs: KB, real posts, one user per role. Safe to re-run."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from annotation.models import Post
from beautybrain_app.roles import Role, roles_ensure
from annotation.services.importing import content_hash, import_file
from kb.models import Brand
from kb.services import brands_import_csv

DEMO_DIR = settings.BASE_DIR / "data" / "demo"
# The public brand KB, then aliases curated for this project (nicknames, CJK names).
KB_FILES = ("kb_brands.csv", "kb_aliases_extra.csv")
# Gold, real Reddit/Twitter posts, then social-style posts (TikTok, Instagram, Xiaohongshu, ...).
DEMO_POSTS = ("gold_seed.jsonl", "posts_unlabelled.jsonl", "posts_social.jsonl")
DEMO_USERS = {
    "annotator": [Role.ANNOTATOR],
    "annotator2": [Role.ANNOTATOR],
    "reviewer": [Role.REVIEWER],
    "admin": [Role.ADMIN],
    "analyst": [Role.ANALYST],
}


def demo_load(*, log=print) -> None:
    roles_ensure()
    if not Brand.objects.exists():
        for name in KB_FILES:
            with (DEMO_DIR / name).open(encoding="utf-8") as f:
                log(f"{name}: {brands_import_csv(stream=f).summary()}")
    for name in DEMO_POSTS:
        path = DEMO_DIR / name
        if _already_imported(path):
            continue
        batch = import_file(path=path)
        log(f"{name}: {batch.posts_created} posts, {batch.gold_created} gold annotations, {batch.error_count} bad rows")


def _already_imported(path: Path) -> bool:
    with path.open(encoding="utf-8") as f:
        first = json.loads(f.readline())
    return Post.objects.filter(content_hash=content_hash(first["text"])).exists()


def demo_users_ensure() -> dict[str, str]:
    """One user per role; passwords are generated once and kept in var/ (never in the repository)."""
    store = settings.VAR_DIR / "demo_users.json"
    passwords = json.loads(store.read_text()) if store.exists() else {}
    User = get_user_model()
    for username, roles in DEMO_USERS.items():
        password = passwords.setdefault(username, secrets.token_urlsafe(9))
        user, _ = User.objects.get_or_create(username=username)
        user.set_password(password)
        user.is_staff = Role.ADMIN in roles
        user.save()
        user.groups.set([Group.objects.get(name=str(r)) for r in roles])
    store.write_text(json.dumps(passwords, indent=2))
    os.chmod(store, 0o600)
    return passwords
