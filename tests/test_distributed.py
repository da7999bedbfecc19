"""steerlab.distributed in one process: ranks from the launcher's environment, shares, part
files and their merge (the real two-process runs are tests/evaluate/test_distributed_runs.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from launching import launch_environment, launcher_prefix
from steerlab import distributed


@pytest.fixture
def alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)


def as_rank(monkeypatch: pytest.MonkeyPatch, rank: int, world: int) -> None:
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))


def test_a_single_process_is_rank_0_of_1_and_sets_up_nothing(alone: None) -> None:
    import torch.distributed as dist

    assert (distributed.world_size(), distributed.rank(), distributed.local_rank()) == (1, 0, 0)
    assert distributed.local_world_size() == 1
    assert distributed.is_main_process()
    assert distributed.default_device() is None  # the loader's own default
    assert distributed.share([3, 1, 2]) == [3, 1, 2]
    distributed.barrier()  # nothing to wait for
    assert not (dist.is_available() and dist.is_initialized())


def test_unit_i_goes_to_rank_i_mod_world(monkeypatch: pytest.MonkeyPatch) -> None:
    units = list("abcdefg")
    shares = []
    for rank in range(3):
        as_rank(monkeypatch, rank, 3)
        shares.append(distributed.share(units))
        assert distributed.is_main_process() == (rank == 0)
        assert distributed.default_device() in ("cpu", f"cuda:{rank}")
    assert shares == [["a", "d", "g"], ["b", "e"], ["c", "f"]]
    assert distributed.local_world_size() == 3  # no LOCAL_WORLD_SIZE: all on this machine
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert distributed.local_world_size() == 1
    assert sorted(unit for share in shares for unit in share) == units


def test_a_bad_or_missing_launcher_variable_reads_as_a_single_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "many")
    monkeypatch.setenv("RANK", "3")
    assert (distributed.world_size(), distributed.rank()) == (1, 0)


def test_part_files_sit_next_to_the_final_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    final = tmp_path / "results.jsonl"
    assert distributed.part_path(final, 2) == tmp_path / "results.part2.jsonl"
    as_rank(monkeypatch, 1, 2)
    assert distributed.part_path(final) == tmp_path / "results.part1.jsonl"


def test_parts_are_found_by_index_read_after_the_merged_file_and_removed(
    tmp_path: Path,
) -> None:
    final = tmp_path / "results.jsonl"
    for index in (10, 2, 0):
        distributed.part_path(final, index).write_text(f"part{index}\n", encoding="utf-8")
    # Not parts: another file's parts, a temporary, a name that only looks alike.
    (tmp_path / "generations.part0.jsonl").write_text("other\n", encoding="utf-8")
    (tmp_path / "results.partial.jsonl").write_text("x\n", encoding="utf-8")
    assert [p.name for p in distributed.existing_parts(final)] == [
        "results.part0.jsonl",
        "results.part2.jsonl",
        "results.part10.jsonl",
    ]

    def read(path: Path) -> list[str]:
        return path.read_text(encoding="utf-8").splitlines()

    assert distributed.read_with_parts(final, read) == ["part0", "part2", "part10"]
    final.write_text("merged\n", encoding="utf-8")
    assert distributed.read_with_parts(final, read) == ["merged", "part0", "part2", "part10"]
    distributed.remove_parts(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "generations.part0.jsonl",
        "results.jsonl",
        "results.partial.jsonl",
    ]


def test_single_process_works_alone_under_a_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.distributed as dist

    as_rank(monkeypatch, 1, 2)
    with distributed.single_process():
        assert (distributed.world_size(), distributed.rank(), distributed.local_rank()) == (1, 0, 0)
        assert distributed.local_world_size() == 1
        assert distributed.default_device() is None
        assert distributed.share([3, 1, 2]) == [3, 1, 2]
        with distributed.single_process():  # nested blocks
            assert distributed.world_size() == 1
        assert distributed.world_size() == 1
        distributed.barrier()  # nothing to wait for
        assert distributed.broadcast("mine") == "mine"
    assert (distributed.world_size(), distributed.rank()) == (2, 1)
    assert not (dist.is_available() and dist.is_initialized())


def test_broadcast_in_a_single_process_is_the_value(alone: None) -> None:
    import torch.distributed as dist

    value = ["a", None]
    assert distributed.broadcast(value) is value
    assert not (dist.is_available() and dist.is_initialized())


BROADCAST_SCRIPT = """
import sys
from pathlib import Path

from steerlab import distributed

got = distributed.broadcast(f"from rank {distributed.rank()}")
late = distributed.broadcast(None if distributed.rank() else ["x", 1])
with distributed.single_process():
    alone = distributed.world_size()
distributed.barrier()
line = f"rank {distributed.rank()}: {got} {late} {alone} {distributed.world_size()}"
# One file per process: two processes printing to one pipe can interleave their lines.
Path(sys.argv[1], f"rank{distributed.rank()}.txt").write_text(line, encoding="utf-8")
"""


@pytest.mark.slow  # two processes (imports of torch and accelerate)
def test_broadcast_hands_rank_0s_value_to_every_process(tmp_path: Path) -> None:
    script = tmp_path / "broadcast.py"
    script.write_text(BROADCAST_SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [*launcher_prefix("torchrun"), str(script), str(tmp_path)],
        env=launch_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = sorted(path.read_text(encoding="utf-8") for path in tmp_path.glob("rank*.txt"))
    assert lines == [
        "rank 0: from rank 0 ['x', 1] 1 2",
        "rank 1: from rank 0 ['x', 1] 1 2",
    ]
