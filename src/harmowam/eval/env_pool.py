"""Many episodes in flight: environments step in worker processes, the policies act in this one.

Evaluation keeps ``envs`` episodes running at once, spread over ``workers`` processes
(each holds the environments of its slots). At every control step each policy is
called once for all of its waiting slots, so a checkpoint's inference is batched
(on a GPU it runs once per step instead of once per environment) while the workers
render and simulate in parallel. A slot whose episode ends takes the next job.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from harmowam.eval.rollout import Rollout


class EnvHost:
    """The rollouts of some slots, in one process: ``start`` and ``step`` answer with observations, and with the
    episode record for a slot whose episode ended."""

    #: environments a process keeps built between episodes, those in episodes always kept (a build takes ~1 s,
    #: each holds a rendering context of ~150 MB)
    keep_envs = 8

    def __init__(self) -> None:
        self.rollouts: dict[int, Rollout] = {}

    def start(self, jobs: dict[int, dict[str, Any]]) -> dict[int, tuple[str, Any]]:
        from harmowam.sim.env import evict_cached_envs

        evict_cached_envs(keep=self.keep_envs, in_use=[r.env for r in self.rollouts.values()])
        for slot, job in jobs.items():
            self.rollouts[slot] = Rollout(
                job["policy"]["name"], job["task"], job["condition"], job["variation"], job["episode"], job["seed"],
                job["max_steps"], job["image_size"], job["camera"], job["video"], job["timeline"],
                job["needs_image"], instance=slot)
        return {slot: ("obs", self.rollouts[slot].observation()) for slot in jobs}

    def step(self, actions: dict[int, tuple[Any, str, float]]) -> dict[int, tuple[str, Any]]:
        out = {}
        for slot, (action, expert, policy_time) in actions.items():
            rollout = self.rollouts[slot]
            rollout.step(action, expert, policy_time)
            if rollout.done:
                out[slot] = ("record", self.rollouts.pop(slot).record())
            else:
                out[slot] = ("obs", rollout.observation())
        return out


def init_process() -> None:
    """Set-up of an evaluation worker process: a rendering pool worker whose torch runs on one thread."""
    import torch

    from harmowam.sim.env import init_render_process

    init_render_process(pool_worker=True)
    torch.set_num_threads(1)


def _worker(conn: Any) -> None:
    init_process()
    host = EnvHost()
    while True:
        message = conn.recv()
        if message is None:
            return
        method, payload = message
        try:
            conn.send(("ok", getattr(host, method)(payload)))
        except BaseException:  # the parent re-raises it with the worker's traceback
            conn.send(("error", traceback.format_exc()))


class EnvPool:
    """``workers`` processes holding the slots ``slot % workers``; with one worker, the environments live in
    this process (no start-up cost: tests and single-episode runs)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._local = EnvHost() if workers == 1 else None
        self._procs, self._conns = [], []
        if workers > 1:
            ctx = mp.get_context("spawn")
            for _ in range(workers):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(child,), daemon=True)
                proc.start()
                self._procs.append(proc)
                self._conns.append(parent)

    def send(self, method: str, per_slot: dict[int, Any]) -> Any:
        """Ask the workers holding these slots to run ``method`` (``start`` or ``step``) on them, without waiting;
        ``receive`` the answer before sending those workers anything else."""
        if self._local is not None:
            return getattr(self._local, method)(per_slot)
        parts: dict[int, dict[int, Any]] = {}
        for slot, value in per_slot.items():
            parts.setdefault(slot % self.workers, {})[slot] = value
        for w, part in parts.items():
            self._conns[w].send((method, part))
        return list(parts)

    def receive(self, ticket: Any) -> dict[int, tuple[str, Any]]:
        """The answers to a ``send``: ``{slot: ("obs", observation) | ("record", episode record)}``."""
        if self._local is not None:
            return ticket
        out: dict[int, tuple[str, Any]] = {}
        for w in ticket:
            status, value = self._conns[w].recv()
            if status == "error":
                raise RuntimeError(f"evaluation worker {w} failed:\n{value}")
            out.update(value)
        return out

    def call(self, method: str, per_slot: dict[int, Any]) -> dict[int, tuple[str, Any]]:
        return self.receive(self.send(method, per_slot))

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        if self._local is not None:
            self._local.rollouts.clear()


def run_batched(jobs: list[dict[str, Any]], build: Callable[[dict[str, Any]], Any], envs: int,
                workers: int) -> Iterator[dict[str, Any]]:
    """Run every job (a :class:`Rollout`'s arguments plus ``policy``, its spec) with ``envs`` episodes in flight
    over ``workers`` processes; yields each episode's record as it ends. ``build(spec)`` makes a policy (once per
    spec); each policy acts once per control step for all of its episodes in a group.

    The slots form two groups that take turns: while the workers step one group's environments, the policies
    compute the other group's actions, so that the simulator and the policy run at the same time (on a CPU the
    policy's batched call alone would leave the environment processes idle)."""
    import json

    if not jobs:
        return
    envs = max(1, min(envs, len(jobs)))
    workers = max(1, min(workers, envs))
    pool = EnvPool(workers)
    groups = [[s for s in range(envs) if (s // workers) % 2 == g] for g in range(2)]
    groups = [g for g in groups if g]
    pending = deque(jobs)
    policies: dict[str, Any] = {}
    owner: dict[int, Any] = {}  # slot -> the policy playing its episode
    observations: dict[int, dict[str, Any]] = {}

    def start(free: list[int]) -> None:
        starts = {}
        for slot in free:
            if not pending:
                break
            job = pending.popleft()
            key = json.dumps(job["policy"], sort_keys=True)
            if key not in policies:
                policies[key] = build(job["policy"])
            owner[slot] = policies[key]
            owner[slot].reset(slot, job["task"], job["seed"])
            starts[slot] = {**job, "needs_image": owner[slot].needs_image}
        if starts:
            observations.update({s: v for s, (_, v) in pool.call("start", starts).items()})

    def act(slots: list[int]) -> dict[int, tuple[Any, str, float]]:
        by_policy: dict[int, list[int]] = {}
        for slot in slots:
            by_policy.setdefault(id(owner[slot]), []).append(slot)
        actions = {}
        for mine in by_policy.values():
            t0 = time.perf_counter()
            acts, experts = owner[mine[0]].act(mine, [observations.pop(s) for s in mine])
            share = (time.perf_counter() - t0) / len(mine)
            actions.update({s: (acts[i], experts[i], share) for i, s in enumerate(mine)})
        return actions

    try:
        start(list(range(envs)))
        in_flight: tuple[list[int], Any] | None = None  # the group whose steps the workers are running
        turn = 0
        while observations or in_flight is not None:
            group = groups[turn % len(groups)]
            turn += 1
            actions = act([s for s in group if s in observations])  # the workers step the other group meanwhile
            if in_flight is not None:
                free = []
                for slot, (kind, value) in sorted(pool.receive(in_flight[1]).items()):
                    if kind == "record":
                        owner.pop(slot)
                        free.append(slot)
                        yield value
                    else:
                        observations[slot] = value
                start(free)
            in_flight = (list(actions), pool.send("step", actions)) if actions else None
    finally:
        pool.close()
