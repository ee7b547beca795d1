"""Agents with tools: a local tool, and a tool service two agents share.

    python examples/tools.py --transport thespian
    python examples/tools.py --model-server openai --api-base URL --model NAME

`weather` runs in each agent's own process; `lookup` is served by a pool of
two actors of its own (a rate-limited fetcher, a database, a GPU model would
be served so), supervised like any component. Offline by default: the
scripted model calls the tools as a real one would, and tool calls stream in
as compact lines beside the replies.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import actorsim
from actorsim import RolePlay, TaskCenter, ToolService, create_component, register_tool
from actorsim.ui import TerminalView

FACTS = {"moon": "384,400 km away", "mars": "225 million km away on average"}


@register_tool(timeout=5.0)
def weather(city: str) -> str:
    """Today's weather in a city.

    Args:
        city: the city's name
    """
    return f"mild and clear in {city}"


def lookup(topic: str) -> dict[str, Any]:
    """Look a fact up in the shared fact store (served by a tool service).

    Args:
        topic: what to look up, e.g. "moon"
    """
    return {"topic": topic, "fact": FACTS.get(topic.lower(), "unknown"), "served_by_pid": os.getpid()}


def scripted(tool: str, arguments: dict[str, str], answer: str) -> dict[str, Any]:
    return {"model_server": "scripted", "replies": [{"tool_calls": [{"name": tool, "arguments": arguments}]}, answer]}


def llm_config(role: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.model_server == "scripted":
        if role == "forecaster":
            return scripted("weather", {"city": "Houston"}, "Launch weather: {heard}.")
        return scripted("lookup", {"topic": "moon"}, "From the store: {heard}")
    config: dict[str, Any] = {"model_server": args.model_server, "model": args.model}
    if args.api_base:
        config["api_base"] = args.api_base
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", choices=actorsim.TRANSPORTS, default="local")
    parser.add_argument("--model-server", choices=["scripted", "openai", "dashscope"], default="scripted")
    parser.add_argument("--model", default="qwen-max")
    parser.add_argument("--api-base")
    parser.add_argument("--log-dir", default="logs")
    args = parser.parse_args()
    try:
        with actorsim.init(transport=args.transport, log_dir=args.log_dir):
            facts = create_component(ToolService, name="facts", remote=True, tools=[lookup], pool=2)
            task_center = create_component(TaskCenter, name="task_center", remote=True)
            task_center.add_agents([
                create_component(RolePlay, name="forecaster", remote=True, llm=llm_config("forecaster", args),
                                 function_list=["weather"], description="Checks the launch weather."),
                create_component(RolePlay, name="navigator", remote=True, llm=llm_config("navigator", args),
                                 function_list=[facts], description="Looks distances up in the shared store."),
            ])
            task_center.send_task_request("Can we launch to the Moon today?")
            view = TerminalView()
            view.show(task_center.step())  # both stream at once, so their lines interleave
            view.end("\nReplies:")
            for message in task_center.environment.history()[1:]:
                print(f"  {message.sent_from}: {message.content}")
    except KeyboardInterrupt:
        print("interrupted: the run is stopped", file=sys.stderr)
        sys.exit(130)
    except actorsim.ActorsimError as error:  # one line a person can act on, not a traceback
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
