"""The embedded broker: kombu's filesystem transport with atomic message writes (beautybrain_app/broker.py)."""

from __future__ import annotations

import threading
from queue import Empty

import pytest
from django.conf import settings
from kombu import Connection


def _channel(folder, transport="beautybrain_app.broker:Transport"):
    conn = Connection("filesystem://", transport=transport, transport_options={
        "data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False})
    return conn, conn.default_channel


def test_the_default_broker_uses_the_atomic_transport():
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        from beautybrain_app.celery import app

        with app.connection_for_write() as conn:
            assert type(conn.default_channel).__module__ == "beautybrain_app.broker"
    else:
        assert not hasattr(settings, "CELERY_BROKER_TRANSPORT")


def test_a_message_being_written_is_invisible_until_whole(tmp_path):
    conn, channel = _channel(tmp_path)
    try:
        # A writer mid-write: the name consumers skip, no content yet.
        partial = tmp_path / "1_x.default.msg.part"
        partial.write_bytes(b"")
        with pytest.raises(Empty):
            channel._get("default")
        partial.unlink()
        channel._put("default", {"n": 1})
        assert [p.name.endswith(".default.msg") for p in tmp_path.iterdir()] == [True]
        assert channel._get("default") == {"n": 1}
    finally:
        conn.release()


def test_a_consumer_racing_a_producer_only_ever_reads_whole_messages(tmp_path):
    conn, channel = _channel(tmp_path)
    consumer_conn, consumer = _channel(tmp_path)
    n = 1500  # kombu's own transport fails this most runs; ours must never
    got, errors, stop = [], [], threading.Event()

    def consume():
        while len(got) < n and not stop.is_set():
            try:
                got.append(consumer._get("default")["n"])
            except Empty:
                continue
            except Exception as exc:  # noqa: BLE001 - kombu's own transport fails here with JSONDecodeError
                errors.append(exc)
                return

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        for i in range(n):
            channel._put("default", {"n": i, "pad": "x" * 2000})
        thread.join(timeout=60)
    finally:
        stop.set()
        thread.join(timeout=5)
        conn.release()
        consumer_conn.release()
    assert not errors
    assert sorted(got) == list(range(n))
