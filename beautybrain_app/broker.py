"""kombu's filesystem transport (the embedded default broker) with messages written atomically.

kombu 5.7 creates a message file, then locks and writes it, while a consumer moves and reads any file it
lists without taking the lock: listed in between, the file is read empty, the JSON decode fails and the
worker stops ("Unrecoverable error: JSONDecodeError"). Here a message is written under a name consumers
skip (`….msg.part`) and renamed into place; a rename within one folder is atomic, so a listed message is
always whole. Selected by settings (CELERY_BROKER_TRANSPORT) whenever the broker URL is filesystem://.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"  # kombu's own naming and order
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
