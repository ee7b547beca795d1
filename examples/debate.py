"""The seed's debate: two agents, six rounds, on any transport.

    python examples/debate.py --transport thespian

Runs offline with a scripted model; pass --model-server openai (with
--api-base and --model) or dashscope (with DASHSCOPE_API_KEY) for a real one.
"""

from __future__ import annotations

import argparse
from typing import Any

import actorsim
from actorsim import RolePlay, TaskCenter, create_component

JOE = (
    "you are the president of the United States Joe Biden, and you are debating "
    "with former president Donald Trump with couple of topics"
)
TRUMP = (
    "you are the former president of the United States Donald Trump, and you are "
    "debating with current president Joe Biden with couple of topics"
)
SCRIPTED_REPLIES = {
    "joe_biden": [
        "We go to the Moon with NASA, our partners and a steady budget.",
        "Artemis works because we invested in it, folks.",
        "Science and allies land us there, not slogans.",
    ],
    "donald_trump": [
        "Nobody builds rockets like we do, believe me, we land first.",
        "Private companies, tremendous ones, do it cheaper and faster.",
        "We will plant the biggest flag the Moon has ever seen.",
    ],
}


def llm_config(role: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.model_server == "scripted":
        return {"model_server": "scripted", "replies": SCRIPTED_REPLIES[role], "chunk_latency": args.chunk_latency}
    config: dict[str, Any] = {"model_server": args.model_server, "model": args.model}
    if args.api_base:
        config["api_base"] = args.api_base
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", choices=actorsim.TRANSPORTS, default="thespian")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--model-server", choices=["scripted", "openai", "dashscope"], default="scripted")
    parser.add_argument("--model", default="qwen-max")
    parser.add_argument("--api-base")
    parser.add_argument("--chunk-latency", type=float, default=0.02, help="scripted model only")
    args = parser.parse_args()

    with actorsim.init(transport=args.transport):
        task_center = create_component(TaskCenter, name="task_center", remote=True)
        joe_biden = create_component(
            RolePlay, name="joe_biden", remote=True, llm=llm_config("joe_biden", args), instruction=JOE
        )
        donald_trump = create_component(
            RolePlay, name="donald_trump", remote=True, llm=llm_config("donald_trump", args), instruction=TRUMP
        )
        task_center.add_agents([joe_biden, donald_trump])
        task_center.send_task_request("what is the best solution to land on moon?", send_to="joe_biden")
        for _ in range(args.rounds):
            speaker = None
            for frame in task_center.step():
                if frame.role != speaker:
                    print(f"\n<{frame.role}>: ", end="")
                    speaker = frame.role
                print(frame.content, end="", flush=True)
        print(f"\n\n{len(task_center.environment.history())} messages on the {args.transport} transport.")


if __name__ == "__main__":
    main()
