"""The README's "More than one machine" commands: real options, and the CPU one runs.

Blocks marked ``<!-- docs-test: launch -->`` hold commands under ``torchrun`` or
``accelerate launch``. Most need GPUs or several machines, so here every line is checked
against the real parsers: the launcher's options against torch's / accelerate's own argument
parsers, the steerlab command and each of its options against the CLI. The block that runs
on two CPU processes is run as written (only the rendezvous port is chosen free), and its
result is compared byte for byte with the same sweep in one process, as the README promises.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from accelerate.commands.launch import launch_command_parser
from torch.distributed.run import get_args_parser

from launching import free_port, launch_environment
from steerlab.cli.app import app
from test_readme import README, readme_blocks

pytestmark = pytest.mark.slow


def launch_blocks() -> list[list[list[str]]]:
    """Each launch block's command lines, split into words."""
    blocks = [b for b in readme_blocks(README.read_text(encoding="utf-8")) if b.launch]
    return [[shlex.split(line) for line in b.commands] for b in blocks]


def steerlab_words(words: list[str]) -> tuple[list[str], list[str]]:
    """(launcher words, steerlab words) of a command line."""
    if words[0] == "steerlab":
        return [], words[1:]
    at = words.index("-m")
    assert words[at + 1] == "steerlab", words
    return words[:at], words[at + 2 :]


def test_launch_blocks_use_real_launcher_and_steerlab_options() -> None:
    blocks = launch_blocks()
    assert len(blocks) >= 4
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    launched = 0
    for block in blocks:
        for words in block:
            launcher, args = steerlab_words(words)
            if launcher[:1] == ["torchrun"]:
                get_args_parser().parse_args([*launcher[1:], "-m", "steerlab", *args])
                launched += 1
            elif launcher[:2] == ["accelerate", "launch"]:
                parsed = launch_command_parser().parse_args(
                    [*launcher[2:], "-m", "steerlab", *args]
                )
                assert parsed.module and parsed.training_script == "steerlab"
                launched += 1
            else:
                assert not launcher, words
            command = commands.get(args[0])
            assert command is not None, f"no steerlab command {args[0]!r}"
            known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
            for word in args[1:]:
                if word.startswith("-") and not word.lstrip("-").replace(".", "").isdigit():
                    name = word.split("=", 1)[0]
                    assert name in known, f"steerlab {args[0]} has no option {name}"
    assert launched >= 7


def run(words: list[str], cwd: Path) -> None:
    launcher, args = steerlab_words(words)
    if launcher:
        assert launcher[0] == "torchrun", "the CPU example uses torchrun"
        port = ["--master-addr", "127.0.0.1", "--master-port", str(free_port())]
        prefix = [sys.executable, "-m", "torch.distributed.run", *launcher[1:], *port]
        prefix += ["-m", "steerlab"]
    else:
        prefix = [sys.executable, "-m", "steerlab"]
    env = launch_environment(cwd, own_cache=False)  # the embedded model's usual cache
    done = subprocess.run(
        [*prefix, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"{' '.join(words)}:\n{done.stderr[-3000:]}"


def test_the_cpu_example_runs_and_equals_one_process(tmp_path: Path) -> None:
    (cpu_block,) = [
        b for b in launch_blocks() if b[-1][:3] == ["torchrun", "--nproc-per-node", "2"]
    ]
    for words in cpu_block:
        run(words, tmp_path)
    _, args = steerlab_words(cpu_block[-1])
    output = Path(args[args.index("-o") + 1])
    single = [*args[: args.index("-o") + 1], "one-process"]
    run(["steerlab", *single], tmp_path)
    two, one = tmp_path / output, tmp_path / "one-process"
    names = sorted(p.name for p in two.iterdir())
    assert names == sorted(p.name for p in one.iterdir())
    assert not [n for n in names if ".part" in n]  # the parts were merged and removed
    for name in ("results.jsonl", "fit.json"):
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
