"""Ctrl-C (SIGINT) and SIGTERM held back for the few statements that update the model and the optimizer, so that an
interrupt lands between optimizer steps and the state saved on the way out is exactly that of a finished step."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Signals that arrive meanwhile are delivered, to the handler that was installed, on leaving the block."""
    if threading.current_thread() is not threading.main_thread():   # handlers can only be set there
        yield
        return
    received: list[int] = []
    previous = {}
    for signum in DEFERRED_SIGNALS:
        handler = signal.getsignal(signum)
        if handler is not None:   # None: installed outside Python, which we cannot restore
            previous[signum] = handler
            signal.signal(signum, lambda number, _frame: received.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(received):
            handler = previous[signum]
            if callable(handler):        # Python's KeyboardInterrupt, or an application's handler
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)
