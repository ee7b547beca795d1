"""Tools for tests; module level so actor processes can import them."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from actorsim import register_tool


@register_tool
def weather(city: str, unit: str = "C") -> str:
    """The weather in a city.

    Args:
        city: the city's name
        unit: C or F
    """
    return f"18 {unit} in {city}"


def pid() -> int:
    """The process this tool runs in."""
    return os.getpid()


def broken(reason: str) -> str:
    """Always raises."""
    raise RuntimeError(f"broken: {reason}")


def stuck() -> str:
    """Answers after 30 s: far past any timeout a test gives it (its thread ends on its own)."""
    threading.Event().wait(30)
    return "too late"


def unserialisable() -> Any:
    """Returns something JSON cannot hold."""
    return {1, 2, 3}


def append_line(path: str, line: str) -> str:
    """A side effect: appends `line` to the file at `path`; returns how many lines it has."""
    with open(path, "a") as file:
        file.write(line + "\n")
    return f"{len(Path(path).read_text().splitlines())} lines"


def die_once(marker: str) -> str:
    """SIGKILLs its own process the first time (the marker file remembers), then answers."""
    if not Path(marker).exists():
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return f"served by {os.getpid()}"


class Calculator:
    """A tool object, as the peer's tools are: name, description, parameters, call."""

    name = "add"
    description = "Adds two integers."
    parameters = [
        {"name": "a", "type": "integer", "description": "first", "required": True},
        {"name": "b", "type": "integer", "description": "second", "required": True},
    ]

    def call(self, a: int, b: int) -> int:
        return a + b


@register_tool("greeter", idempotent=True)
class Greeter:
    """A registered tool class, built with the config of a `{name: config}` entry."""

    description = "Greets someone."
    parameters = {"type": "object", "properties": {"who": {"type": "string"}}, "required": ["who"]}

    def __init__(self, greeting: str = "Hello") -> None:
        self.greeting = greeting

    def call(self, who: str) -> str:
        return f"{self.greeting}, {who}!"
