"""Where an actor runs on a Ray cluster: spread over the nodes, packed on the driver's, or on chosen nodes.

A value the user writes (`"spread"`, `"pack"`, `"node:<id>"`,
`"label:<key>=<value>"`) is parsed here once, before any actor starts, so a
typo fails at `init` or `create_component` with the forms it could have been.
Which node a placement picks is the Ray transport's business; the other
transports run every actor on one machine and refuse a placement.
"""

from __future__ import annotations

import attrs

KINDS = ("spread", "pack", "node", "label")
FORMS = '"spread", "pack", "node:<node id>" or "label:<key>=<value>"'


@attrs.frozen
class Placement:
    """`kind` is one of `KINDS`; `value` the node id, or the label's `(key, value)`, for those kinds."""

    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    value: str | tuple[str, str] | None = None

    def __str__(self) -> str:
        if self.kind == "node":
            return f"node:{self.value}"
        if self.kind == "label":
            assert isinstance(self.value, tuple)
            return f"label:{self.value[0]}={self.value[1]}"
        return self.kind


def placement_from(value: Placement | str | None, *, argument: str = "placement") -> Placement | None:
    """A `Placement` from what the user wrote; raises ValueError (TypeError for a non-str) naming the forms."""
    if value is None or isinstance(value, Placement):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a str ({FORMS}), not {value!r}")
    kind, colon, rest = value.partition(":")
    if not colon and kind in ("spread", "pack"):
        return Placement(kind)
    if colon and kind == "node" and rest and all(c in "0123456789abcdefABCDEF" for c in rest):
        return Placement("node", rest.lower())
    if colon and kind == "label":
        key, equals, label = rest.partition("=")
        if equals and key.strip() and label.strip():
            return Placement("label", (key.strip(), label.strip()))
    raise ValueError(f"{argument}={value!r} is not a placement; write {FORMS}")
