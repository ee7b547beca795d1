"""The seed's multi-role chat room in the browser: two agents, a director and you.

    python examples/chat_room.py --transport thespian --port 7860

Then open http://127.0.0.1:7860. A director (a watcher agent that reads the
whole conversation) chooses who speaks next; when it chooses you ("visitor"),
the room waits for your message. Every browser tab gets its own room.
Runs offline with a scripted model; pass --model-server openai (with
--api-base and --model) or dashscope (with DASHSCOPE_API_KEY) for a real one.
Needs `pip install 'actorsim[ui]'`.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
from typing import Any

import actorsim
from actorsim import RolePlay, TaskCenter, create_component
from actorsim.ui import ChatApp, ChatRoom, WatcherDirector, round_robin, show_notices, sigterm_interrupts

TITLE = "actorsim chat room: landing on the Moon"
TASK = "How should we land people on the Moon again, and soon?"
HUMAN = "visitor"
AGENTS = {
    "ada": "You are Ada, a rocket engineer. Answer in two sentences, practically.",
    "bruno": "You are Bruno, a space economist. Answer in two sentences, about cost and risk.",
}
SCRIPTED_REPLIES = {  # {speaker} said “{heard}”: the last speaker and their own words (see ScriptedConfig)
    "ada": [
        "Engineering first: a heavy lifter, a lander we test often, and margins everywhere.",
        "{speaker} said “{heard}” As an engineer I say: test that on Earth before we fly it.",
        "{speaker} said “{heard}” Then the lander must be able to abort at any altitude.",
        "{speaker} said “{heard}” I would fly it twice without a crew before anyone boards.",
        "{speaker} said “{heard}” Keep the design simple enough to repair on the Moon.",
        "{speaker} said “{heard}” Agreed, if the schedule leaves room for the tests.",
    ],
    "bruno": [
        "Economics first: fixed-price contracts and two competing landers keep the budget honest.",
        "{speaker} said “{heard}” As an economist I ask: who pays, and what if it fails?",
        "{speaker} said “{heard}” Each extra test flight costs a year of a small agency's budget.",
        "{speaker} said “{heard}” Then share the cost with partners who want a seat.",
        "{speaker} said “{heard}” No insurer covers a first flight: we carry that risk ourselves.",
        "{speaker} said “{heard}” Fine, if the second lander is bought at a fixed price.",
    ],
    "director": ["ada", "bruno", HUMAN],
}
DIRECTOR = (
    "You chair a chat room. Read the conversation and name who should speak next: "
    f"one of {', '.join([*AGENTS, HUMAN])}. Give {HUMAN} a turn after every two replies. Answer with the name only."
)


def llm_config(role: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.model_server == "scripted":
        return {"model_server": "scripted", "replies": SCRIPTED_REPLIES[role], "chunk_latency": args.chunk_latency}
    config: dict[str, Any] = {"model_server": args.model_server, "model": args.model}
    if args.api_base:
        config["api_base"] = args.api_base
    return config


def room_factory(args: argparse.Namespace) -> Any:
    """A new room per browser session: its own task center and agents, under names of its own."""
    numbers = itertools.count(1)

    def make_room() -> ChatRoom:
        prefix = f"room{next(numbers)}"
        task_center = create_component(TaskCenter, name=prefix, remote=True)
        agents = [
            create_component(
                RolePlay, name=f"{prefix}.{role}", role=role, remote=True, llm=llm_config(role, args),
                instruction=instruction,
            )
            for role, instruction in AGENTS.items()
        ]
        visitor = create_component(RolePlay, name=f"{prefix}.{HUMAN}", role=HUMAN, remote=True, human_input_mode="ON")
        agents.append(visitor)
        if args.director == "watcher":
            agents.append(create_component(
                RolePlay, name=f"{prefix}.director", role="director", remote=True, is_watcher=True,
                llm=llm_config("director", args), instruction=DIRECTOR,
            ))
        task_center.add_agents(agents)
        director = WatcherDirector("director") if args.director == "watcher" else round_robin
        room = ChatRoom(task_center, director=director, human=HUMAN)
        room.open(TASK)
        return room

    return make_room


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", choices=actorsim.TRANSPORTS, default="local")
    parser.add_argument("--port", type=int, default=7860, help="0 picks a free port")
    parser.add_argument("--director", choices=["watcher", "round-robin"], default="watcher")
    parser.add_argument("--model-server", choices=["scripted", "openai", "dashscope"], default="scripted")
    parser.add_argument("--model", default="qwen-max")
    parser.add_argument("--api-base")
    parser.add_argument("--chunk-latency", type=float, default=0.08, help="scripted model only")
    parser.add_argument("--log-dir", default="logs")
    args = parser.parse_args()

    try:
        # The actor system starts before Gradio's server, in this same process.
        with actorsim.init(transport=args.transport, log_dir=args.log_dir):
            sigterm_interrupts()  # a polite `kill` stops the app as Ctrl-C does
            show_notices()  # on stderr: model servers retried, a room that stopped (its page says why)
            app = ChatApp(room_factory(args), title=TITLE)
            try:
                url = app.launch(args.port)
                print(f"chat room on {args.transport}: {url}  (Ctrl-C stops it)", flush=True)
                threading.Event().wait()
            finally:
                app.close()
    except KeyboardInterrupt:
        print("stopped", flush=True)
        sys.exit(130)
    except actorsim.ActorsimError as error:  # one line a person can act on, not a traceback
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
