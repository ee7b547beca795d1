"""attrs validators shared by the configuration classes, with one wording for their errors."""

from __future__ import annotations

from typing import Any

import attrs


def positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def non_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def int_at_least(low: int) -> Any:
    """An int `low` or more, or None."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{attribute.name} must be an int >= {low} or None, not {value!r}")

    return check


def name_or_none(value: object, *, argument: str) -> None:
    """Refuse what is neither a non-empty str nor None, naming the argument."""
    if value is not None and (not isinstance(value, str) or not value):
        raise TypeError(f"{argument} must be a non-empty str or None, not {value!r}")
