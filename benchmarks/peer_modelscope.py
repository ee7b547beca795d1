"""Peer benchmark: modelscope-agent 0.7.2 "multi-agent debate" step time.

Why: actorsim compares its step times against a published peer. This runs the
peer's own documented multi-agent API (TaskCenter + RolePlay agents) with an
offline, zero-latency model, so only the framework's overhead is measured.

Run with the peer venv (see benchmarks/peer_requirements.txt), e.g.
    .peer-venv/bin/python benchmarks/peer_modelscope.py --mode local --agents 2 --steps 20
Prints exactly one JSON line on stdout; all logs go to stderr.
setup_s covers Ray start-up (ray mode), creating the task center and agents,
registering them and sending the task (the warm-up step is in neither setup_s
nor the step times). Each timed step consumes every frame it yields.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, Iterator, List, Optional

# On import the peer unpacks NLTK data into ./tmp/nltk_data, and its logger
# writes ./logs/*.log and logs every message at INFO. Run from a scratch
# directory (removed at exit) and keep the logger off the disk and quiet
# (override the variables by setting them yourself). Done before the import so
# Ray workers, which inherit the environment and cwd, do the same.
SCRATCH = tempfile.mkdtemp(prefix='peer-modelscope-')
os.chdir(SCRATCH)
os.environ.setdefault('LOG_ENABLE_FILE', 'off')
os.environ.setdefault('LOG_LEVEL', 'WARNING')

with contextlib.redirect_stdout(sys.stderr):  # the import prints to stdout
    from modelscope_agent import create_component
    from modelscope_agent.agents import RolePlay
    from modelscope_agent.llm.base import BaseChatModel, register_llm
    from modelscope_agent.task_center import TaskCenter

PEER, VERSION = 'modelscope-agent', '0.7.2'
REPLY_WORDS: List[str] = 'I hold my position for the reasons above'.split()
TOPIC = 'Should cities ban cars from their centres?'


@register_llm('offline')
class OfflineModel(BaseChatModel):
    """Zero-latency model: streams a fixed reply, one chunk per word."""

    def __init__(self, model: str = 'offline', model_server: str = 'offline',
                 **kwargs: Any) -> None:
        # support_fn_call=False: otherwise the peer probes function calling.
        super().__init__(model, model_server, support_fn_call=False)

    def _chat_stream(self, messages: List[Dict], stop: Optional[List[str]] = None,
                     **kwargs: Any) -> Iterator[str]:
        for word in REPLY_WORDS:
            yield word + ' '

    def _chat_no_stream(self, messages: List[Dict], stop: Optional[List[str]] = None,
                        **kwargs: Any) -> str:
        return ' '.join(REPLY_WORDS)


def exit_on_sigterm() -> None:
    """SIGTERM (e.g. from `timeout`) -> SystemExit, so the `finally`s run."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def run(mode: str, n_agents: int, n_steps: int) -> Dict[str, Any]:
    remote = mode == 'ray'
    ray: Any = None
    temp_dir: Optional[str] = None
    t0 = time.perf_counter()
    try:
        if remote:
            import ray
            # The peer's RayTaskExecutor.init_ray() calls a bare ray.init(),
            # which could attach to another cluster; start a private one instead.
            temp_dir = tempfile.mkdtemp(prefix='peer-ray-')
            ray.init(address='local', _temp_dir=temp_dir, include_dashboard=False,
                     logging_level=logging.ERROR)
            exit_on_sigterm()  # ray.init installs a SIGTERM handler that skips cleanup
            print(f'ray up in {time.perf_counter() - t0:.1f}s', file=sys.stderr)
        task_center = create_component(TaskCenter, name='task_center', remote=remote)
        agents = [
            create_component(
                RolePlay, name=f'debater_{i}', remote=remote,
                # local: the registered config path; ray: an instance, since
                # workers do not see this script's LLM_REGISTRY entry.
                llm=OfflineModel() if remote else {'model': 'offline', 'model_server': 'offline'},
                function_list=[],
                instruction=f'You are debater {i}. Argue your side of: {TOPIC}')
            for i in range(n_agents)
        ]
        task = f'Debate: {TOPIC} Answer the other debaters each round.'
        if remote:
            ray.get(task_center.add_agents.remote(agents))
            ray.get(task_center.send_task_request.remote(task))
        else:
            task_center.add_agents(agents)
            task_center.send_task_request(task)  # send_to defaults to 'all'

        def step() -> int:
            frames = 0
            if remote:
                # TaskCenter is an actor; its generator method streams ObjectRefs.
                for ref in task_center.step.remote():
                    ray.get(ref)
                    frames += 1
            else:
                for _ in task_center.step():
                    frames += 1
            return frames

        setup_s = time.perf_counter() - t0
        expected = n_agents * len(REPLY_WORDS)  # every agent answers every step
        times: List[float] = []
        for i in range(n_steps + 1):  # step 0 is the warm-up, not timed
            start = time.perf_counter()
            frames = step()
            times.append(time.perf_counter() - start)
            if frames != expected:
                raise RuntimeError(f'step {i}: {frames} frames, expected {expected}')
        print(f'setup {setup_s:.2f}s; warm-up {times[0]:.4f}s; steps '
              + ' '.join(f'{t:.4f}' for t in times[1:]), file=sys.stderr)
        times = times[1:]
        return {'peer': PEER, 'version': VERSION, 'mode': mode, 'agents': n_agents,
                'steps': n_steps, 'mean_step_s': statistics.mean(times),
                'median_step_s': statistics.median(times), 'setup_s': setup_s}
    finally:
        if ray is not None:
            ray.shutdown()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def main() -> None:
    real_stdout = sys.stdout
    try:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument('--mode', choices=['local', 'ray'], default='local')
        parser.add_argument('--agents', type=int, default=2)
        parser.add_argument('--steps', type=int, default=20)
        args = parser.parse_args()
        exit_on_sigterm()
        with contextlib.redirect_stdout(sys.stderr):  # peer/Ray prints stay off stdout
            result = run(args.mode, args.agents, args.steps)
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
    print(json.dumps(result), file=real_stdout, flush=True)


if __name__ == '__main__':
    main()
