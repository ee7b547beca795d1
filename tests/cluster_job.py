"""A small swarm for `ray job submit`: dozens of scripted agents spread over a cluster's nodes.

    ray job submit --address http://HEAD:8265 --working-dir tests -- \\
        python cluster_job.py --result /shared/result.json --log-dir /shared/logs

The Environment and the Registry are packed on the driver's node (they hold
the run's state); the workers are spread. Tasks go round-robin to the
workers, a batch per round; every reply goes to a collector, a human agent
who never speaks, so each task is answered exactly once. After each round the
progress file says how far the run got (a test kills a node meanwhile). The
result file lists every task with the replies it got, and where each agent ran.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import actorsim
from actorsim import USER_REQUIREMENT, RolePlay, RoundRobin, TaskCenter, create_component


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", default="ray")
    parser.add_argument("--agents", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=24, help="tasks per round")
    parser.add_argument("--placement", default="spread")
    parser.add_argument("--reply-latency", type=float, default=0.0, help="seconds the scripted model takes")
    parser.add_argument("--log-dir", required=True, help="an absolute path: a job's cwd is a temporary copy")
    parser.add_argument("--result", required=True)
    parser.add_argument("--progress", help="a file rewritten after each round")
    args = parser.parse_args()
    started = time.monotonic()
    with actorsim.init(transport=args.transport, placement=args.placement, log_dir=args.log_dir,
                       ask_timeout=120, step_timeout=300) as runtime:
        joined = time.monotonic()
        center = create_component(TaskCenter, name="swarm", remote=True, placement="pack")
        collector = create_component(RolePlay, name="collector", remote=True, human_input_mode="ON",
                                     instruction="you collect the answers", placement="pack")
        llm = {"model_server": "scripted", "replies": ["done: {heard}"], "reply_latency": args.reply_latency}
        workers = [
            create_component(RolePlay, name=f"worker{index:02d}", remote=True, llm=llm, send_to="collector",
                             instruction="you answer one task")
            for index in range(args.agents)
        ]
        center.add_agents([collector])
        center.add_agents(workers, group="workers")
        spawned = time.monotonic()
        for round_index in range(1, args.rounds + 1):
            for task in range(args.tasks):
                center.send_task_request(f"task {round_index}.{task}", send_to=RoundRobin("workers"))
            for _ in center.step():
                pass
            if args.progress:
                Path(args.progress).write_text(json.dumps({"rounds_done": round_index}))
        history = center.environment.history()
        tasks = [m for m in history if m.sent_from == USER_REQUIREMENT]
        answers = {t.message_id: [m.message_id for m in history if t.message_id in m.parent_ids] for t in tasks}
        result = {
            "run_id": runtime.run_id,
            "joined": getattr(runtime.transport, "joined", None),
            "tasks": [{"id": t.message_id, "content": t.content} for t in tasks],
            "answers": answers,
            "agents": {w.name: w.ref.node for w in workers},
            "init_s": joined - started,
            "spawn_s": spawned - joined,
            "run_s": time.monotonic() - started,
        }
    Path(args.result).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
