"""A debate whose driver tests kill: three agents on a model server, one keeping a ledger with a tool, a terminal human.

    python tests/resume_debate.py --transport thespian --api-base URL --rounds 12 --log-dir L --out R --ledger F

`tests/test_resume.py` runs it under `actorsim run --resume-on-failure`, SIGKILLs its driver at random points
and compares what it writes to `--out` with a calm run's. The ledger tool appends one line per call, keyed by
the call's idempotency key, and writes nothing for a key it has seen: its side effect happens once per call.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import actorsim
from actorsim import RolePlay, TaskCenter, create_component, register_tool


@register_tool("ledger")
class Ledger:
    """Writes an entry into the ledger file, once per call."""

    name = "ledger"
    description = "Write an entry into the ledger."
    parameters = {"type": "object", "properties": {"entry": {"type": "string"}}, "required": ["entry"]}

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def call(self, entry: str, idempotency_key: str) -> str:
        seen = self.path.read_text().splitlines() if self.path.exists() else []
        if not any(line.startswith(f"{idempotency_key}\t") for line in seen):
            with self.path.open("a") as ledger:
                ledger.write(f"{idempotency_key}\t{entry}\n")
        return f"written: {entry}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", default="thespian")
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--log-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--ledger", required=True)
    args = parser.parse_args()
    llm = {"model_server": "openai", "model": "debater", "api_base": args.api_base, "retry_initial_wait": 0.05}
    with actorsim.init(transport=args.transport, log_dir=args.log_dir, step_timeout=120):
        center = create_component(TaskCenter, name="debate", remote=True)
        agents = [
            create_component(RolePlay, name="ann", remote=True, llm=llm, instruction="You argue."),
            create_component(RolePlay, name="bob", remote=True, llm=llm, instruction="You keep the ledger.",
                             function_list=[{"ledger": {"path": args.ledger}}]),
            create_component(RolePlay, name="cyd", remote=True, llm=llm, instruction="You doubt."),
            create_component(RolePlay, name="hal", remote=True, human_input_mode="TERMINAL"),
        ]
        center.add_agents(agents)
        center.send_task_request("How do we land on the Moon?")
        for _ in range(args.rounds):
            for _frame in center.step():
                pass
        history = [
            [m.message_id, m.sent_from, list(m.send_to), m.content, m.step, m.round]
            for m in center.environment.history()
        ]
        memories = {agent.role: [[t.role, t.content] for t in agent.get_history()] for agent in agents}
    Path(args.out).write_text(json.dumps({"history": history, "memories": memories}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
