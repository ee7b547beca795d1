"""The driver's side of a tool service: a paused step's call, asked of the service and answered.

The call goes through `Runtime.ask` like every other request, so a service
that dies is restarted on the one restart path; whether the call is sent
again is this module's rule: only for a tool declared idempotent. Whatever
else goes wrong is the model's to hear about, as a tool's own fault is.
"""

from __future__ import annotations

import zlib

from actorsim._errors import ActorDiedError, ActorStoppedError, AskTimeoutError, ComponentFailedError
from actorsim._runtime.runtime import Runtime
from actorsim.tools import ServiceRequest, ToolOutcome


def answer(runtime: Runtime, request: ServiceRequest) -> ToolOutcome:
    """Ask the service, in the driver; a death restarts it and is asked again only for an idempotent tool."""
    service, call = request.service, request.call
    actor = request.actors[zlib.crc32(call.call_id.encode()) % len(request.actors)]

    def redeliver(died: ActorDiedError) -> bool:
        if request.idempotent:
            runtime.log("tool.call.redelivered", call_id=call.call_id, tool=call.tool, error=repr(died))
        return request.idempotent

    try:
        outcome: ToolOutcome = runtime.ask(runtime.actor(actor), call, redeliver=redeliver)
    except ComponentFailedError as gone:
        return ToolOutcome(error=f"tool service {service!r} is down for good: {gone}")
    except AskTimeoutError as error:
        return ToolOutcome(error=f"tool service {service!r} did not answer: {error}")
    except ActorDiedError as error:  # restarted, and not asked again: the call may or may not have run
        runtime.log("tool.call.lost", call_id=call.call_id, tool=call.tool, error=repr(error))
        return ToolOutcome(
            error=f"tool service {service!r} died during the call ({type(error).__name__}); "
            f"{call.tool!r} is not declared idempotent, so it was not called again: "
            "it may or may not have taken effect"
        )
    except ActorStoppedError as error:
        return ToolOutcome(error=f"tool service {service!r} is stopped: {error}")
    except Exception as error:  # noqa: BLE001 - the service raised: the model hears of it, as of a tool's fault
        return ToolOutcome(error=f"tool service {service!r} failed: {type(error).__name__}: {error}")
    return outcome
