"""Running steerlab under a launcher in tests: one process, or two CPU processes (gloo).

``torchrun`` is ``python -m torch.distributed.run``; ``accelerate`` is ``accelerate launch
--multi_gpu`` (its ``--cpu`` mode starts ONE process: multi-CPU wants MPI), whose workers
pick gloo where there is no GPU. Both rendezvous on a free local port.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from steerlab.serve.server import free_port

__all__ = ["free_port", "launch", "launch_environment", "launcher_prefix"]

TIMEOUT_S = 300
LAUNCHER_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_PORT")


def launch_environment(root: Path, *, own_cache: bool = True) -> dict[str, str]:
    """This process's environment for launched tests: one thread, offline, CPU only.

    Args:
        root: where the launched runs may write.
        own_cache: a steerlab cache under ``root`` (tiny models); False keeps the user's
            (the embedded model's converted checkpoint).
    """
    env = dict(os.environ)
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "NO_COLOR": "1",
            "COLUMNS": "200",
            "MASTER_ADDR": "127.0.0.1",
            "CUDA_VISIBLE_DEVICES": "",  # gloo on CPU, also on a machine with GPUs
        }
    )
    if own_cache:
        env["STEERLAB_CACHE"] = str(root / "steerlab-cache")
    for name in LAUNCHER_VARIABLES:
        env.pop(name, None)
    return env


def launcher_prefix(launcher: str, processes: int = 2) -> list[str]:
    """The command line before ``-m steerlab``: ``single``, ``torchrun`` or ``accelerate``."""
    port = str(free_port())
    if launcher == "single":
        return [sys.executable]
    if launcher == "torchrun":
        return [
            sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
            "--master-addr", "127.0.0.1", "--master-port", port,
        ]  # fmt: skip
    if launcher == "accelerate":
        return [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
            "--num_processes", str(processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", port,
        ]  # fmt: skip
    raise ValueError(f"unknown launcher {launcher!r}")


def launch(
    launcher: str,
    args: Sequence[str],
    root: Path,
    *,
    succeed: bool | None = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``steerlab ARGS`` under ``launcher``; asserts it exits 0 (``succeed``), non-zero
    (``succeed=False``) or nothing (None)."""
    done = subprocess.run(
        [*launcher_prefix(launcher), "-m", "steerlab", *args],
        cwd=cwd,
        env=launch_environment(root),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if succeed is not None:
        assert (done.returncode == 0) == succeed, (
            f"{launcher} {' '.join(args)}: exit {done.returncode}\n{done.stderr[-4000:]}"
        )
    return done
