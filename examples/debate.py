"""The seed's debate: two agents, six rounds, on any transport.

    python examples/debate.py --transport thespian
    python examples/debate.py --human donald_trump    # you play Trump, typing in the terminal

Runs offline with a scripted model; pass --model-server openai (with
--api-base and --model) or dashscope (with DASHSCOPE_API_KEY) for a real one.
Replies stream in as they are generated, each role in its colour. Ctrl-C
ends the run cleanly (exit code 130); its log stays replayable. A model
server that cannot answer ends the run with one line on stderr (exit code 1);
while a server is retried, a line says so.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import actorsim
from actorsim import RolePlay, TaskCenter, create_component
from actorsim.ui import TerminalView, show_notices, sigterm_interrupts

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


def debater(role: str, instruction: str, args: argparse.Namespace) -> Any:
    if role == args.human:
        return create_component(
            RolePlay, name=role, remote=True, human_input_mode="TERMINAL", instruction=instruction
        )
    return create_component(RolePlay, name=role, remote=True, llm=llm_config(role, args), instruction=instruction)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", choices=actorsim.TRANSPORTS, default="thespian")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--model-server", choices=["scripted", "openai", "dashscope"], default="scripted")
    parser.add_argument("--model", default="qwen-max")
    parser.add_argument("--api-base")
    parser.add_argument("--chunk-latency", type=float, default=0.02, help="scripted model only")
    parser.add_argument("--human", choices=sorted(SCRIPTED_REPLIES), help="play this debater yourself, typing")
    parser.add_argument("--log-dir", default="logs", help="where the run log goes")
    args = parser.parse_args()
    view = TerminalView(humans=[args.human] if args.human else [])
    show_notices(view)  # "joe_biden: model server at URL answered 503; retry 2 of 5 in 1.3 s"
    runtime = None
    try:
        with actorsim.init(transport=args.transport, log_dir=args.log_dir) as runtime:
            sigterm_interrupts()  # a polite `kill` ends the run as Ctrl-C does
            task_center = create_component(TaskCenter, name="task_center", remote=True)
            task_center.add_agents([debater("joe_biden", JOE, args), debater("donald_trump", TRUMP, args)])
            task_center.send_task_request("what is the best solution to land on moon?", send_to="joe_biden")
            for _ in range(args.rounds):
                if args.human and args.human in task_center.environment.pending_roles():
                    view.your_turn(args.human)
                view.show(task_center.step())
            view.end(f"\n{len(task_center.environment.history())} messages on the {args.transport} transport.")
    except KeyboardInterrupt:
        where = f"; its log: {runtime.log_config.directory}" if runtime and runtime.log_config else ""
        view.end(f"interrupted: the run is stopped{where}")
        sys.exit(130)
    except actorsim.ActorsimError as error:  # one line a person can act on, not a traceback
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
