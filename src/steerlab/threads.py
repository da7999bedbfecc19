"""How many CPU threads torch uses in the ``steerlab`` command.

torch starts one OpenMP thread per CPU it sees, and OpenMP threads spin while they wait for
each other: on a small machine where another process is busy, a thread that is descheduled
stalls every parallel region, and steering or tuning runs ten times slower or worse. The
command therefore picks the thread count itself (:func:`choose_threads`):

1. ``--threads N`` on the command line;
2. else ``$STEERLAB_THREADS``;
3. else ``$OMP_NUM_THREADS`` (the standard OpenMP setting, respected when set);
4. else the CPUs this process may run on (its CPU affinity, and the container's CPU quota
   from cgroups), at most :data:`MAX_DEFAULT_THREADS`, never below 1.

The default does not follow the machine's load, although fewer threads than CPUs is much
faster while another process keeps a core busy (``--threads 1`` on 2 cores): results can
differ in the last bits between thread counts, and a run resumed after an interruption must
be byte-identical to an uninterrupted one. On a shared machine, set ``STEERLAB_THREADS``.

The Python API leaves torch's own setting alone; call ``torch.set_num_threads`` there.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from steerlab.errors import SpecError

THREADS_ENV = "STEERLAB_THREADS"
MAX_DEFAULT_THREADS = 8
"""Default threads at most: more rarely speeds up the small models steerlab runs on CPU."""


def parse_threads(value: str, source: str) -> int:
    """A positive thread count from text; ``source`` names the option or variable.

    Raises:
        SpecError: not a positive integer (one line naming ``source`` and the value).
    """
    text = value.strip()
    try:
        count = int(text)
    except ValueError:
        raise SpecError(f"{source} {value!r} is not a whole number of threads") from None
    if count < 1:
        raise SpecError(f"{source} {value!r} must be at least 1")
    return count


def _cgroup_quota() -> int | None:
    """CPUs allowed by a cgroup v2 (``cpu.max``) or v1 (``cfs_quota_us``) quota, if any."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if len(text) == 2 and text[0] != "max":
            return max(1, math.ceil(int(text[0]) / int(text[1])))
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return None


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, within any cgroup CPU quota."""
    getter = getattr(os, "sched_getaffinity", None)
    count = len(getter(0)) if getter is not None else (os.cpu_count() or 1)
    quota = _cgroup_quota()
    return max(1, min(count, quota) if quota is not None else count)


def default_threads() -> int:
    """The default of step 4 in the module docstring (no option, no variable).

    It depends on the machine, never on its momentary load: float reductions can differ with
    the thread count, and a resumed run must compute exactly what the interrupted one did.
    """
    return max(1, min(available_cpus(), MAX_DEFAULT_THREADS))


def choose_threads(option: str | None = None) -> tuple[int, str]:
    """The thread count and where it came from (see the module docstring).

    Args:
        option: the ``--threads`` value as typed, or None.

    Returns:
        ``(threads, source)``, source one of ``"--threads"``, ``"$STEERLAB_THREADS"``,
        ``"$OMP_NUM_THREADS"``, ``"default"``.

    Raises:
        SpecError: a value that is not a positive integer, naming where it came from.
    """
    if option is not None:
        return parse_threads(option, "--threads"), "--threads"
    for variable in (THREADS_ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(variable)
        if variable == "OMP_NUM_THREADS" and value:
            value = value.split(",")[0]  # OpenMP allows a list, one count per nesting level
        if value is not None and value.strip():
            return parse_threads(value, f"${variable}"), f"${variable}"
    return default_threads(), "default"


def set_threads(option: str | None = None) -> int:
    """Choose the thread count (:func:`choose_threads`) and give it to torch.

    Returns:
        The thread count set.

    Raises:
        SpecError: a bad ``--threads`` or environment value.
    """
    threads, _ = choose_threads(option)
    import torch

    torch.set_num_threads(threads)
    return threads
