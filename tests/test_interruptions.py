"""Killed or interrupted commands lose nothing, and a folder has one writer at a time (real signals)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from harmowam.data import EpisodeStore
from harmowam.data.format import PROGRESS_FILE
from harmowam.files import FolderLock, FolderLockedError

GENERATE = ["harmowam", "data", "generate", "--tasks", "push", "--episodes", "4", "--image-size", "32"]
#: long enough that a signal sent after the first episode lands mid-run, not after the last episode
GENERATE_LONG = [*GENERATE, "--episodes", "10"]


def _default_sigint() -> None:
    # A child inherits an ignored SIGINT (as a shell's background job does, and as this test process may after
    # other tests); the command must see Ctrl-C as a terminal delivers it to a foreground job.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    exe = Path(sys.executable).parent / args[0]
    return subprocess.Popen([str(exe), *args[1:]], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=_default_sigint)


def _wait_for_episodes(folder: Path, n: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        progress = folder / PROGRESS_FILE
        if progress.is_file() and len(progress.read_text().splitlines()) > n:  # header + n episodes
            return
        assert proc.poll() is None, "the command ended before it could be interrupted"
        time.sleep(0.1)
    raise TimeoutError(f"{folder}: fewer than {n} episodes after {timeout} s")


def test_killed_generation_continues_to_the_uninterrupted_dataset(tmp_path: Path) -> None:
    proc = _start([*GENERATE, "--workers", "1", "--out", "killed"], tmp_path)
    _wait_for_episodes(tmp_path / "killed", 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "meta.json").exists()
    kept = [json.loads(line) for line in (tmp_path / "killed" / PROGRESS_FILE).read_text().splitlines()[1:]]
    res = run_cli([*GENERATE, "--workers", "1", "--out", "killed"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{len(kept)} of 4 episodes kept" in res.stdout
    res = run_cli([*GENERATE, "--workers", "1", "--out", "whole"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    resumed, whole = EpisodeStore(tmp_path / "killed"), EpisodeStore(tmp_path / "whole")
    assert [e.seed for e in resumed.episodes] == [e.seed for e in whole.episodes]
    assert [e.seed for e in resumed.episodes[:len(kept)]] == [e["seed"] for e in kept]
    for key in ("state", "action", "env_state"):
        np.testing.assert_array_equal(resumed.arrays[key], whole.arrays[key])
    np.testing.assert_allclose(resumed.stats["action"]["mean"], whole.stats["action"]["mean"], atol=1e-6)
    assert not (tmp_path / "killed" / PROGRESS_FILE).exists()


def test_ctrl_c_with_workers_exits_quickly_and_the_rerun_finishes(tmp_path: Path) -> None:
    proc = _start([*GENERATE_LONG, "--workers", "2", "--out", "data"], tmp_path)
    _wait_for_episodes(tmp_path / "data", 1, proc)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    start = time.time()
    _, err = proc.communicate(timeout=30)
    assert time.time() - start < 10
    assert proc.returncode == 130 and "rerun the same command to resume" in err
    res = run_cli([*GENERATE_LONG, "--workers", "2", "--out", "data"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "episodes kept" in res.stdout
    assert len(EpisodeStore(tmp_path / "data")) == 10


def _group_gone(pgid: int, timeout: float) -> bool:
    """Whether every process of the group (the command and its workers) has ended within ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_sigterm_to_the_command_alone_stops_its_workers(tmp_path: Path) -> None:
    proc = _start([*GENERATE_LONG, "--workers", "2", "--out", "data"], tmp_path)
    _wait_for_episodes(tmp_path / "data", 1, proc)
    proc.send_signal(signal.SIGTERM)  # to the parent only, as `kill PID` or a scheduler sends it
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "rerun the same command to resume" in err
    assert _group_gone(proc.pid, 10), "worker processes outlived the terminated command"


def test_a_second_writer_is_refused_with_the_holder_named(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    with FolderLock(out, "first eval"):
        with pytest.raises(FolderLockedError, match=f"process {os.getpid()} .*'first eval'"):
            with FolderLock(out):
                pass
        res = run_cli(["harmowam", "eval", "--policy", "random", "--tasks", "push", "--conditions", "in_domain",
                       "--episodes", "1", "--workers", "1", "--out", str(out)], tmp_path)
        assert res.returncode == 2
        assert f"is being written by process {os.getpid()}" in res.stderr
        res = run_cli([*GENERATE, "--workers", "1", "--out", str(out)], tmp_path)
        assert res.returncode == 2 and "is being written" in res.stderr
    with FolderLock(out):  # released when the holder is done
        pass
