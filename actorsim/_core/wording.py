"""Words that the command line and the terminal share."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """"1 message", "2 messages"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
