"""Messages, frames and ids: what travels between processes and into logs."""

from __future__ import annotations

import pickle

import pytest

from actorsim import Frame, Message
from actorsim._core.ids import new_id
from actorsim._protocol import agent, environment, registry


class TestMessage:
    def test_round_trips_through_json_and_pickle(self) -> None:
        """A message comes back equal from JSON and from pickle."""
        message = Message("hello", "joe_biden", ["donald_trump"], parent_ids=["a", "b"], round=3)
        assert Message.from_json(message.to_json()) == message
        assert pickle.loads(pickle.dumps(message)) == message

    def test_a_new_task_opens_its_own_trace(self) -> None:
        """Without a trace id a message starts a trace named after itself."""
        message = Message("task", "user_requirement", ["joe_biden"])
        assert message.trace_id == message.message_id
        assert Message("reply", "joe_biden", [], trace_id=message.trace_id).trace_id == message.trace_id

    def test_is_immutable(self) -> None:
        message = Message("hello", "joe_biden", ["donald_trump"])
        with pytest.raises(AttributeError):
            message.content = "changed"  # type: ignore[misc]


class TestFrame:
    def test_is_a_string_that_knows_its_parts(self) -> None:
        frame = Frame("joe_biden", "We go", "id-1")
        assert frame == "<joe_biden>: We go"
        assert (frame.role, frame.content, frame.message_id) == ("joe_biden", "We go", "id-1")

    def test_pickles_with_its_parts(self) -> None:
        frame = pickle.loads(pickle.dumps(Frame("joe_biden", "We go", "id-1")))
        assert (frame, frame.role, frame.message_id) == ("<joe_biden>: We go", "joe_biden", "id-1")


class TestIds:
    def test_ids_are_unique_and_sort_in_creation_order(self) -> None:
        ids = [new_id() for _ in range(10_000)]
        assert len(set(ids)) == len(ids)
        assert ids == sorted(ids)


REQUEST_MODULES = [environment, registry, agent]


@pytest.mark.parametrize("module", REQUEST_MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_request_type_pickles(module: object) -> None:
    """Each attrs request or answer type of an actor survives pickling (it crosses processes)."""
    import attrs

    message = Message("hi", "a", ["b"])
    checked = 0
    for value in vars(module).values():
        if isinstance(value, type) and attrs.has(value) and value.__module__ == module.__name__:  # type: ignore[attr-defined]
            fields = attrs.fields(value)
            kwargs = {f.name: _sample(f.type, message) for f in fields if f.default is attrs.NOTHING}
            instance = value(**kwargs)
            assert pickle.loads(pickle.dumps(instance)) == instance
            checked += 1
    assert checked >= 3


def _sample(annotation: object, message: Message) -> object:
    text = str(annotation)
    if "Message" in text and "tuple" in text:
        return (message,)
    if "Message" in text:
        return message
    if "AgentInfo" in text:
        return registry.AgentInfo("a", "a", "x.Y")
    if "tuple" in text:
        return ("a",)
    if "int" in text:
        return 1
    if "bool" in text:
        return True
    return "a"
