"""Helpers of the kill -9 tests: run the real ``steerlab`` command in a subprocess, SIGKILL it
part-way, run it again, and compare its folder with an uninterrupted run's.

The child processes get ``OMP_NUM_THREADS=1`` (so they do not fight the test runner for the
cores, and every run does the same arithmetic) and ``HF_HUB_OFFLINE=1`` (no network).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Longest any one child may take (model loading included) before the test gives up.
TIMEOUT_S = 240.0


def steerlab_command(args: Sequence[str]) -> list[str]:
    """The installed console script (what users run), else the same entry point via python."""
    script = Path(sys.executable).with_name("steerlab")
    if script.is_file():
        return [str(script), *args]
    return [sys.executable, "-c", "from steerlab.cli import main; main()", *args]


@dataclass
class Run:
    """A ``steerlab`` child process writing its stdout and stderr to files."""

    args: list[str]
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def describe(self) -> str:
        """The command and the end of its stderr, for failure messages."""
        stderr = self.stderr.read_text(encoding="utf-8", errors="replace")
        return f"steerlab {' '.join(self.args)}:\n{stderr[-4000:]}"

    def reap(self) -> None:
        """Kill the child if it is still running, and wait for it."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=60)


class Cli:
    """Runs ``steerlab`` children for one test: one thread each, offline, a private cache,
    their output in files under ``tmp_path/logs`` (so a chatty child never blocks on a pipe).
    """

    def __init__(self, tmp_path: Path) -> None:
        self.logs = tmp_path / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env.update(
            {
                "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "STEERLAB_CACHE": str(tmp_path / "steerlab-cache"),
                "NO_COLOR": "1",
            }
        )
        self._count = 0

    def start(self, args: Sequence[str]) -> Run:
        """Start ``steerlab ARGS`` in the background (e.g. the uninterrupted run)."""
        self._count += 1
        stdout = self.logs / f"{self._count}.stdout"
        stderr = self.logs / f"{self._count}.stderr"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(steerlab_command(args), env=self.env, stdout=out, stderr=err)
        return Run(list(args), process, stdout, stderr)

    def finish(self, run: Run) -> str:
        """Wait for a started run; fail the test (with its stderr) unless it succeeds.

        Returns:
            What it printed on stdout.
        """
        try:
            run.process.wait(timeout=TIMEOUT_S)
        finally:
            run.reap()
        assert run.process.returncode == 0, f"failed: {run.describe()}"
        return run.stdout.read_text(encoding="utf-8", errors="replace")

    def run(self, args: Sequence[str]) -> str:
        """Run ``steerlab ARGS`` to completion (stdout); fail the test unless it succeeds."""
        return self.finish(self.start(args))

    def kill_when(
        self, args: Sequence[str], ready: Callable[[], bool], poll_s: float = 0.005
    ) -> None:
        """Start ``steerlab ARGS``; as soon as ``ready()`` holds, SIGKILL it.

        Fails the test when the process ends by itself first (the work was too small to
        catch it part-way, or it crashed) or when ``ready()`` never holds within
        :data:`TIMEOUT_S`.
        """
        run = self.start(args)
        deadline = time.monotonic() + TIMEOUT_S
        try:
            while not ready():
                code = run.process.poll()
                assert code is None, f"ended (code {code}) before the kill: {run.describe()}"
                assert time.monotonic() < deadline, f"no progress in time: {run.describe()}"
                time.sleep(poll_s)
            run.process.kill()
            run.process.wait(timeout=60)
        finally:
            run.reap()
        code = run.process.returncode
        assert code == -signal.SIGKILL, f"expected death by SIGKILL, got {code}: {run.describe()}"


def line_count(path: Path) -> int:
    """Complete lines in a text file (0 when it does not exist)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def folder_bytes(folder: Path, skip: Sequence[str] = ()) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), hidden ones included."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).parts[0] not in skip
    }
