"""What an agent's actor is asked, and what its streamed step gives back.

A step goes out as `RunStep` and comes back as a stream of `Chunk`s, tool
`Frame`s, `Retrying` notices and what each model call used (`CallUsed`),
ending with one `Reply` (or a `Paused`, when it waits for a tool service, a
permit or the budget: the driver then sends `ResumeStep`; or `Withdrawn`,
when the budget was spent before its next model call).
"""

from __future__ import annotations

import attrs

from actorsim._core.budget import Allowance, SpendCheck, Spent
from actorsim._core.envelope import Message
from actorsim.agents import Post
from actorsim.llm import GenerationSettings, Permit, PermitRequest, RetryNotice
from actorsim.llm._gate import Lease
from actorsim.memory import MemoryState
from actorsim.tools import ServiceRequest, ToolOutcome


@attrs.frozen
class RunStep:
    """Answer `received` with a reply whose id is `reply_id`; it goes to `send_to`, in trace `trace_id`.

    The driver names the reply, so that a step delivered again to a restarted
    agent makes the same message, and publishing it twice is recognised.
    """

    received: tuple[Message, ...]
    reply_id: str
    send_to: tuple[str, ...]
    trace_id: str | None
    step: int
    round: int
    clock: int
    task: str | None = None
    user_response: str | None = None
    settings: GenerationSettings | None = None
    allowance: Allowance | None = None  # what its calls may use before a later one asks (None: the run has no budget)
    lease: Lease | None = None  # its host's share of its server's permits, for the batch it goes in (hosted agents)


@attrs.frozen
class Chunk:
    role: str
    text: str
    message_id: str
    finish_reason: str | None = None  # "length": the reply's model call was cut at its token limit (text is "")


@attrs.frozen
class Retrying:
    """The agent's model server is being tried again: streamed to the driver, which tells the user."""

    role: str
    notice: RetryNotice

    def __str__(self) -> str:
        return f"{self.role}: {self.notice}"


@attrs.frozen
class Reply:
    """The finished reply, and what the step added to the agent's memory; a watcher's is never published.

    A step that returned `Post`s has them in `posts`; `message` is then the
    pattern of their messages (ids, trace, causes, clock), whose content and
    recipients the driver fills in per post when it routes them.
    """

    message: Message
    publish: bool
    remembered: MemoryState = MemoryState()
    posts: tuple[Post, ...] | None = None


@attrs.frozen
class Withdrawn:
    """The last item of a step whose next model call the budget stopped: nothing is published, and the agent's
    memory is as before the step."""

    reply_id: str


@attrs.frozen
class Describe:
    pass


@attrs.frozen
class GetMemory:
    pass


@attrs.frozen
class GetMemoryState:
    pass


@attrs.frozen
class RememberSent:
    """`message` went out in the agent's name (`send_task_request(send_from=role)`): it remembers saying it."""

    message: Message


@attrs.frozen
class RestoreMemory:
    """Sent by the supervisor to a restarted agent: its memory as of its last finished step."""

    state: MemoryState


@attrs.frozen
class Paused:
    """The last item of a step's stream that waits for a tool service, its model server's limiter or the
    run's budget: the driver answers `request`."""

    reply_id: str
    request: ServiceRequest | PermitRequest | SpendCheck


@attrs.frozen
class ResumeStep:
    """Go on with the paused step `reply_id`, the tool service's `outcome` (a `Permit`, or the budget's next
    `Allowance`) in hand; `Spent` withdraws it."""

    reply_id: str
    outcome: ToolOutcome | Permit | Allowance | Spent
