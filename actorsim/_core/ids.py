"""Message identifiers that sort by creation time across processes."""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time

_counter = itertools.count()
_lock = threading.Lock()


def new_id() -> str:
    """Return a unique id whose text order follows creation time.

    48 bits of milliseconds, a per-process counter (so ids made in the same
    millisecond by one process still sort in creation order) and random bits
    (so processes never collide). Fixed width, lower-case hex.
    """
    with _lock:
        count = next(_counter) & 0xFFFFFF
    millis = time.time_ns() // 1_000_000
    return f"{millis:012x}{count:06x}{os.getpid() & 0xFFFF:04x}{secrets.randbits(40):010x}"


def post_id(reply_id: str, index: int) -> str:
    """The id of a reply's `index`-th post (from 0): the reply's id, then `.index` after the first.

    Made from the reply's id rather than drawn, so a step delivered again makes
    the same ids; a replay, which gives back the ids the driver drew, leaves them out.
    """
    return reply_id if index == 0 else f"{reply_id}.{index}"


def is_post_id(message_id: str) -> bool:
    """Whether `message_id` was made from a reply's id by `post_id` (rather than drawn by `new_id`)."""
    return "." in message_id
