"""How many torch CPU threads to use: never more than the cores that are free.

torch's default (one thread per core) is fast on an idle machine, but when other jobs hold the cores
its threads spin against each other and a run gets up to 30x slower (measured on a 2-core machine:
a 40-iteration train took 259 s with the default and 29 s with one thread). So the default here is the
cores this process may use, minus the ones the load average says are busy, shared between the workers
that run side by side, and at least one.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; cgroup quotas are not read)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def busy_cores() -> int:
    """Cores other work keeps busy, from the 1-minute load average (0 where there is none)."""
    try:
        return int(round(os.getloadavg()[0]))
    except (AttributeError, OSError):
        return 0


def default_threads(workers: int = 1, cores: int | None = None, busy: int | None = None) -> int:
    """Threads per worker when ``workers`` processes train side by side."""
    cores = usable_cores() if cores is None else cores
    busy = busy_cores() if busy is None else busy
    free = max(1, cores - busy)
    return max(1, free // max(1, workers))


def set_threads(requested: int | None = None, workers: int = 1) -> int:
    """Set torch's thread count and numpy's BLAS threads (FID's eigenvalues, SWD's projections) to
    ``requested``, else ``default_threads``; return it. BLAS spins against busy cores just as torch does
    (measured: a 2048x2048 eigenvalue problem took 24 s with 2 threads on a busy 2-core machine, 3.5 s with 1)."""
    import torch
    from threadpoolctl import threadpool_limits

    n = requested if requested else default_threads(workers)
    torch.set_num_threads(n)
    threadpool_limits(limits=n)
    return n
