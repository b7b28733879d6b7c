"""CPU threads follow ``--nprocs``: the app never uses more cores than it was given.

Containers and cluster jobs often see every core of the node while the scheduler granted only a few; torch's
default thread pool (one thread per visible core) would then oversubscribe the allocation. So the process that
runs a command caps torch's intra-op pool at ``--nprocs`` and exports the usual OpenMP/BLAS variables, which
processes it starts (participant-level workers, the BIDS validator) inherit. Participant-level workers then
narrow themselves to one thread each (``--nprocs`` recordings in parallel, see ``workflows/participant.py``).
"""

from __future__ import annotations

import os

# read by OpenMP (torch, libgomp), MKL, OpenBLAS and numexpr when a process starts
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def limit_threads(n_threads: int) -> int:
    """Cap this process's compute threads at ``n_threads`` (and that of processes it starts).

    Parameters
    ----------
    n_threads : int
        Threads allowed, normally ``--nprocs``; values below 1 are treated as 1.

    Returns
    -------
    int
        The number of threads torch will use.
    """
    n_threads = max(1, int(n_threads))
    for name in THREAD_VARIABLES:
        os.environ[name] = str(n_threads)
    import torch  # imported here so that the CLI's --help and --version stay fast

    torch.set_num_threads(n_threads)
    return torch.get_num_threads()
