"""The chat room, in the browser (Chatbot mode, Gradio) and in the terminal.

Gradio is an optional extra (`pip install 'actorsim[ui]'`), imported only
when an app is built; the room and the terminal view need nothing more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actorsim.ui._room import ChatRoom, Director, HumanTurn, RoomEvent, Speaking, WatcherDirector, round_robin
from actorsim.ui._terminal import TerminalView, show_notices, sigterm_interrupts

if TYPE_CHECKING:
    from actorsim.ui._gradio import ChatApp, build_app, free_port

_GRADIO_NAMES = ("ChatApp", "build_app", "free_port")


def __getattr__(name: str) -> Any:
    """The Gradio app's names, importing Gradio only when one is asked for."""
    if name in _GRADIO_NAMES:
        from actorsim.ui import _gradio  # here, not at the top: it imports gradio, an optional package

        return getattr(_gradio, name)
    raise AttributeError(f"module 'actorsim.ui' has no attribute {name!r}")


__all__ = [
    "ChatApp",
    "ChatRoom",
    "Director",
    "HumanTurn",
    "RoomEvent",
    "Speaking",
    "TerminalView",
    "WatcherDirector",
    "build_app",
    "free_port",
    "round_robin",
    "show_notices",
    "sigterm_interrupts",
]
