"""SIGTERM is handled like Ctrl-C (SIGINT): it raises KeyboardInterrupt.

SLURM (and ``docker stop``, Kubernetes, systemd) ends a job with SIGTERM, and only later with SIGKILL. Python's
default for SIGTERM is to die on the spot, leaving temporary files and an unsaved model behind. Raised as
KeyboardInterrupt instead, it takes the one path an interruption takes everywhere: ``finally`` blocks remove
temporary files and scratch folders, pretraining saves its checkpoint, and the command exits 130 so that the
same command finishes what is missing.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


_working = False   # a worker process is processing a recording (it has files to clean up)


def _interrupt_worker(signum, frame) -> None:
    if _working:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
    os._exit(130)   # idle between tasks: nothing to clean up, and no traceback from the pool's worker loop


def install_worker_handlers() -> None:
    """In a worker process, SIGTERM and SIGINT (a job's whole process group gets them) interrupt the recording
    being processed like Ctrl-C; an idle worker just ends."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _interrupt_worker)


@contextmanager
def working() -> Iterator[None]:
    """Marks a recording being processed (see :func:`install_worker_handlers`)."""
    global _working
    _working = True
    try:
        yield
    finally:
        _working = False


@contextmanager
def sigterm_as_keyboard_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises KeyboardInterrupt; the previous handler is restored afterwards (the
    command line also runs inside notebooks and test runners, whose handlers must survive it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
