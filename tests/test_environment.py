"""The Environment alone: what a batch of replies stores, and what it refuses."""

from __future__ import annotations

import pytest

from actorsim import USER_REQUIREMENT, Message
from actorsim._actors.environment import Environment
from actorsim._protocol.environment import (
    AddRoles,
    GetHistory,
    Publish,
    PublishAll,
    PublishBatch,
    Release,
    TakePending,
)


def test_a_batch_of_replies_is_stored_whole_or_not_at_all() -> None:
    """One bad message refuses the whole batch: nothing stored, nothing acknowledged; the good batch stores all,
    in order, and acknowledges what each reply answered."""
    environment = Environment()
    environment.receive(AddRoles(("a", "b")))
    task = Message("task", USER_REQUIREMENT, ("a", "b"))
    environment.receive(Publish(task))
    environment.receive(TakePending(("a", "b")))
    from_a = Publish(Message("from a", "a", ("b",)), answers=(task.message_id,))
    astray = PublishAll("b", (Message("from b", "b", ("nobody",)),), answers=(task.message_id,))
    with pytest.raises(ValueError, match="nobody"):
        environment.receive(PublishBatch((from_a, astray)))
    assert environment.receive(GetHistory()) == (task,)

    from_b = PublishAll("b", (Message("from b", "b", ("a",)), Message("and b", "b", ("a",))),
                        answers=(task.message_id,))
    environment.receive(PublishBatch((from_a, from_b)))
    assert [m.content for m in environment.receive(GetHistory())] == ["task", "from a", "from b", "and b"]
    environment.receive(Release(("a", "b")))  # a failed step would give back what was not acknowledged: nothing
    taken = environment.receive(TakePending(("a", "b")))
    assert {role: [m.content for m in messages] for role, messages in taken.items()} == {
        "a": ["from b", "and b"], "b": ["from a"]
    }
