"""Resuming a run whose driver died: how long it takes to get back to where the driver died.

    python benchmarks/resume_bench.py [--transport thespian] [--messages 1000] [--latency 0.2]

A debate whose model takes `--latency` seconds a reply runs until it has published `--messages`
messages; its driver is then SIGKILLed, and `actorsim resume` goes on with it. Printed: the time the
run took to get to its death, the time the resumed run took to get back there (every recorded message
matched: answered from the log, no model latency, only the program's own work), and their ratio (the
issue's target: under 0.1).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def program(args: argparse.Namespace) -> None:
    """The debate itself, run by the benchmark (and again by `actorsim resume`)."""
    import actorsim
    from actorsim import RolePlay, TaskCenter, create_component

    # Prompts of one size however long the debate (no history, no quoting): the program's own work per step stays
    # the same, as the model's latency does.
    llm = {"model_server": "scripted", "replies": ["We go by rocket."], "reply_latency": args.latency}
    with actorsim.init(transport=args.transport, log_dir=args.log_dir):
        center = create_component(TaskCenter, name="debate", remote=True)
        agents = [create_component(RolePlay, name=f"agent_{n}", remote=True, llm=llm, use_history=False)
                  for n in range(args.agents)]
        center.add_agents(agents)
        center.send_task_request("How do we land on the Moon?")
        for round_done in range(1, args.rounds + 1):
            for _ in center.step():
                pass
            Path(args.progress).write_text(json.dumps({"published": 1 + round_done * args.agents}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", default="thespian")
    parser.add_argument("--messages", type=int, default=1000, help="messages published before the driver dies")
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the model takes a reply")
    parser.add_argument("--program", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--log-dir", help=argparse.SUPPRESS)
    parser.add_argument("--progress", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.program:
        program(args)
        return
    from actorsim.runs import list_runs

    with tempfile.TemporaryDirectory() as temp:
        logs, progress = Path(temp) / "logs", Path(temp) / "progress.json"
        rounds = 2 * args.messages // args.agents  # more than it gets to
        command = [sys.executable, str(HERE), "--program", "--transport", args.transport, "--agents",
                   str(args.agents), "--latency", str(args.latency), "--rounds", str(rounds), "--log-dir",
                   str(logs), "--progress", str(progress)]
        driver = subprocess.Popen(command, stdout=subprocess.DEVNULL)

        def published() -> int:
            try:
                return int(json.loads(progress.read_text())["published"])
            except (OSError, ValueError):
                return 0

        while published() < args.messages:
            time.sleep(0.01)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        [dead] = list_runs(logs)
        resumed = subprocess.Popen([sys.executable, "-m", "actorsim", "--log-dir", str(logs), "resume", dead.run_id],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        recorded = dead.messages
        try:
            while True:
                runs = [run for run in list_runs(logs) if run.resumes == dead.run_id]
                if runs and len(runs[0].messages) >= len(recorded):
                    break
                time.sleep(0.2)
        finally:
            resumed.kill()
            resumed.wait()
        [again] = [run for run in list_runs(logs) if run.resumes == dead.run_id]
    back_at = again.messages[len(recorded) - 1]
    assert back_at.message_id == recorded[-1].message_id
    original = recorded[-1].created_at - dead.started_at
    resume = back_at.created_at - again.started_at
    print(f"{args.transport}, {args.agents} agents, model {args.latency * 1000:.0f} ms a reply: "
          f"{len(recorded)} messages in {original:.1f} s before the driver died; "
          f"resumed to there in {resume:.1f} s: ratio {resume / original:.3f} (target < 0.1)")


if __name__ == "__main__":
    main()
