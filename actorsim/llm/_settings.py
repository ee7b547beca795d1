"""Generation settings: in the `llm` dict, and per step; a step's override the dict's."""

from __future__ import annotations

from typing import Any

import attrs

from actorsim._core.validators import int_at_least


def _number_in(low: float, high: float) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ValueError(f"{attribute.name} must be a number in [{low}, {high}] or None, not {value!r}")

    return check


@attrs.frozen
class GenerationSettings:
    """Sampling settings a model call is made with; None leaves the server's default."""

    temperature: float | None = attrs.field(default=None, validator=_number_in(0.0, 2.0))
    top_p: float | None = attrs.field(default=None, validator=_number_in(0.0, 1.0))
    seed: int | None = attrs.field(default=None, validator=int_at_least(-(2**63)))
    max_tokens: int | None = attrs.field(default=None, validator=int_at_least(1))

    def over(self, base: GenerationSettings) -> GenerationSettings:
        """These settings, with `base`'s where these leave one unset."""
        return GenerationSettings(**{**base.to_dict(), **self.to_dict()})

    def to_dict(self) -> dict[str, Any]:
        """The settings that are set, as a request body takes them."""
        return {name: value for name in _FIELDS if (value := getattr(self, name)) is not None}


_FIELDS = tuple(field.name for field in attrs.fields(GenerationSettings))
SETTING_NAMES = _FIELDS
