from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation.models import Assignment, Post
from annotation.services.queue import (
    annotators_needed, assignment_release, disagreement_score, double_threshold, post_priority_refresh, queue_next,
)
from tests.annotation import editor_factories as f

pytestmark = pytest.mark.django_db



def test_disagreement_is_zero_when_sources_agree_and_high_when_they_do_not():
    p = f.post("I love my SK2 essence and la mer cream")
    same = [f.prediction(p, "teacher", [(10, 13)]), f.prediction(p, "gazetteer", [(10, 13)])]
    assert disagreement_score(same) == 0
    q = f.post("I love my SK2 essence and la mer cream!")
    differ = [f.prediction(q, "teacher", [(10, 13), (26, 32)]), f.prediction(q, "gazetteer", [(26, 29)])]
    assert disagreement_score(differ) > 0.5


def test_queue_order_is_disagreement_then_student_doubt_then_unlabelled(make_user, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    unlabelled = f.post("nothing pre-labelled here")
    sure = f.post("student is sure about SK2")
    f.prediction(sure, "student", [(22, 25)], confidence=0.98)
    f.prediction(sure, "gazetteer", [(22, 25)])
    unsure = f.post("student is unsure about SK2")
    f.prediction(unsure, "student", [(24, 27)], confidence=0.41)
    f.prediction(unsure, "gazetteer", [(24, 27)])
    fight = f.post("teacher and gazetteer fight over la mer")
    f.prediction(fight, "teacher", [(33, 39)], confidence=0.9)
    f.prediction(fight, "gazetteer", [(33, 35)])
    f.prediction(fight, "student", [], confidence=0.99)
    assert post_priority_refresh(post_ids=[unlabelled.pk, sure.pk, unsure.pk, fight.pk]) == 4

    user = make_user("annotator")
    order = []
    for _ in range(4):
        nxt = queue_next(user=user)
        order.append(nxt.pk)
        Assignment.objects.filter(annotator=user, post_id=nxt.pk).update(completed_at=timezone.now())
    assert order == [fight.pk, unsure.pk, sure.pk, unlabelled.pk]
    assert queue_next(user=user) is None


def test_an_open_assignment_comes_back_until_done(make_user, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    a, b = f.post(), f.post()
    user = make_user("annotator")
    first = queue_next(user=user)
    assert queue_next(user=user).pk == first.pk
    Assignment.objects.filter(annotator=user, post_id=first.pk).update(completed_at=timezone.now())
    assert queue_next(user=user).pk == ({a.pk, b.pk} - {first.pk}).pop()


def test_two_annotators_never_share_a_single_annotator_post(make_user, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    p1, p2 = f.post(), f.post()
    ann1, ann2, ann3 = make_user("annotator"), make_user("annotator"), make_user("annotator")
    got1, got2 = queue_next(user=ann1), queue_next(user=ann2)
    assert {got1.pk, got2.pk} == {p1.pk, p2.pk}
    assert queue_next(user=ann3) is None  # both taken, none expired


def test_a_double_share_post_goes_to_exactly_two_annotators(make_user, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 1.0
    p = f.post()
    assert annotators_needed(p) == 2
    users = [make_user("annotator") for _ in range(3)]
    assert queue_next(user=users[0]).pk == p.pk
    assert queue_next(user=users[1]).pk == p.pk
    assert queue_next(user=users[2]) is None
    assert Assignment.objects.filter(post=p).count() == 2


def test_the_double_share_is_deterministic_and_close_to_the_setting(settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0.1
    threshold = double_threshold()
    from annotation.services.importing import content_hash

    hashes = [content_hash(f"text number {i}") for i in range(4000)]
    share = sum(h < threshold for h in hashes) / len(hashes)
    assert 0.08 < share < 0.12
    assert [h < double_threshold() for h in hashes[:50]] == [h < threshold for h in hashes[:50]]


def test_an_abandoned_assignment_expires_and_the_post_goes_to_someone_else(make_user, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    p = f.post()
    ann1, ann2 = make_user("annotator"), make_user("annotator")
    assert queue_next(user=ann1).pk == p.pk
    assert queue_next(user=ann2) is None
    Assignment.objects.filter(annotator=ann1).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert queue_next(user=ann2).pk == p.pk
    # The first annotator does not get it back from the queue (someone else holds it now).
    assert queue_next(user=ann1) is None


def test_skip_hands_the_post_to_others_and_never_back(make_user, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    p1 = f.post()
    p1.priority = 5
    p1.save()
    p2 = f.post()
    ann1, ann2 = make_user("annotator"), make_user("annotator")
    assert queue_next(user=ann1).pk == p1.pk
    assignment_release(user=ann1, post_id=p1.pk)
    assert queue_next(user=ann1).pk == p2.pk
    assert queue_next(user=ann2).pk == p1.pk


def test_gold_posts_leave_the_queue(make_user, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    p = f.post()
    f.prediction(p, "teacher", [(0, 4)])
    reviewer = make_user("reviewer")
    from annotation.services.review import gold_set

    gold_set(post=p, reviewer=reviewer, spans=[], is_beauty=False)
    assert Post.objects.get(pk=p.pk).priority < 0
    post_priority_refresh(post_ids=[p.pk])
    assert Post.objects.get(pk=p.pk).priority < 0
    assert queue_next(user=make_user("annotator")) is None


@pytest.mark.parametrize("n_posts", [3, 40])
def test_queue_page_runs_constant_queries(client_as, settings, django_assert_num_queries, n_posts):
    settings.ANNOTATION_DOUBLE_SHARE = 0.5
    posts = [f.post() for _ in range(n_posts)]
    for p in posts[::2]:
        f.prediction(p, "teacher", [(0, 4)], confidence=0.5)
        f.prediction(p, "gazetteer", [(5, 7)])
    post_priority_refresh(post_ids=[p.pk for p in posts])
    client = client_as("annotator")
    # session, user, groups, open assignment, candidates; then the pick: savepoint, lock, slot count,
    # insert, release. The same ten whether there are 3 posts or 40.
    with django_assert_num_queries(10):
        response = client.get(reverse("queue"))
    assert response.status_code == 302
    assert response.url.startswith("/annotate/")


def _race(make_user, n_users: int) -> list:
    """n annotators ask for their next post at the same moment, each on its own connection."""
    import threading

    from django.db import connection

    users = [make_user("annotator") for _ in range(n_users)]
    barrier = threading.Barrier(n_users)
    got: list = [None] * n_users

    def ask(i):
        try:
            barrier.wait()
            post = queue_next(user=users[i])
            got[i] = post.pk if post else None
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(n_users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return got


def _check_race(make_user, settings):
    settings.ANNOTATION_DOUBLE_SHARE = 0
    posts = [f.post() for _ in range(2)]
    got = _race(make_user, 4)
    taken = [pk for pk in got if pk is not None]
    assert sorted(taken) == sorted(p.pk for p in posts)  # each post once, two annotators left without
    assert Assignment.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_simultaneous_requests_never_share_a_single_annotator_post(make_user, settings):
    _check_race(make_user, settings)


@pytest.mark.pg
@pytest.mark.django_db(transaction=True)
def test_simultaneous_requests_never_share_a_single_annotator_post_on_postgres(make_user, settings):
    _check_race(make_user, settings)


def test_queue_refresh_command_orders_posts_from_their_predictions():
    from django.core.management import call_command

    calm, fight = f.post("all agree on SK2 here"), f.post("they fight over la mer here")
    f.prediction(calm, "teacher", [(13, 16)])
    f.prediction(calm, "gazetteer", [(13, 16)])
    f.prediction(fight, "teacher", [(21, 27)])
    f.prediction(fight, "gazetteer", [(24, 27)])
    call_command("queue_refresh")
    calm.refresh_from_db(), fight.refresh_from_db()
    assert fight.priority > calm.priority > 0
