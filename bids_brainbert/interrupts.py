"""SIGTERM is handled like Ctrl-C (SIGINT): it raises KeyboardInterrupt.

SLURM (and ``docker stop``, Kubernetes, systemd) ends a job with SIGTERM, and only later with SIGKILL. Python's
default for SIGTERM is to die on the spot, leaving temporary files and an unsaved model behind. Raised as
KeyboardInterrupt instead, it takes the one path an interruption takes everywhere: ``finally`` blocks remove
temporary files and scratch folders, pretraining saves its checkpoint, and the command exits 130 so that the
same command finishes what is missing.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def install_sigterm_handler() -> bool:
    """Make SIGTERM raise KeyboardInterrupt in this process (for good: worker processes). False where signals
    cannot be handled (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGTERM, _interrupt)
    return True


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
