"""How many CPU threads torch runs one model call on (config.toml's `[runtime] cpu_threads`).

"auto" is this machine's physical cores among those the process may run on: a second thread on a
core's hyper-thread sibling adds little to matrix work and, when the machine is busy, every extra
thread is one more that the others wait for at each of torch's barriers. A Ray actor is held to its
share of the node's CPUs (at least one thread), so that replicas on one node never ask for more
threads together than the node has.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

SYS_CPU = Path("/sys/devices/system/cpu")


def usable_cpus() -> set[int]:
    """The logical CPUs this process may run on (its affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def physical_cores(cpus: set[int] | None = None, sys_cpu: Path = SYS_CPU) -> int:
    """The physical cores behind `cpus` (default: `usable_cpus()`): hyper-thread siblings count once.
    Where the system does not say which logical CPUs share a core (not Linux), each counts as one."""
    cpus = usable_cpus() if cpus is None else cpus
    cores: set[str] = set()
    for cpu in cpus:
        topology = sys_cpu / f"cpu{cpu}" / "topology"
        try:
            siblings = (topology / "core_cpus_list").read_text(encoding="ascii").strip()
        except OSError:
            try:
                siblings = (topology / "thread_siblings_list").read_text(encoding="ascii").strip()
            except OSError:
                siblings = f"cpu{cpu}"  # nothing known: a core of its own
        cores.add(siblings)
    return max(1, len(cores))


def threads_for(setting: int | None, share: float | None = None) -> int:
    """The threads to use: `setting` (None: "auto", the physical cores), never more than a Ray
    actor's `share` of CPUs (rounded down, at least 1)."""
    threads = setting if setting is not None else physical_cores()
    if share is not None:
        threads = min(threads, max(1, int(share)))
    return max(1, threads)


def apply_cpu_threads(setting: int | None, share: float | None = None) -> int:
    """Set torch's intra-op threads for this process (the model calls that follow); the number set."""
    import torch  # with the model, not before

    threads = threads_for(setting, share)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
        logger.info("torch runs on %d CPU threads", threads)
    return threads
