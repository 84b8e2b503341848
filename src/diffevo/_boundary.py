"""Where Ctrl-C may interrupt a run of :func:`diffevo.minimize`: only inside the objective.

Between two generations the state of every run is whole (told and booked): that is what
a checkpoint holds and what Ctrl-C returns. :class:`GenerationBoundary` keeps a SIGINT
that arrives anywhere else for the next evaluation.
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["GenerationBoundary"]


class GenerationBoundary:
    """Ctrl-C (SIGINT, main thread only) raises at once only while the objective runs.

    There the generation's tell has not begun, so the state is the previous generation's;
    a SIGINT anywhere else (tell, bookkeeping, restarts, checkpoint) is kept and raised
    when the next evaluation would start. Off the main thread nothing changes.
    """

    def __init__(self):
        self.open = False
        self.pending = False
        self.previous = None

    def __enter__(self) -> GenerationBoundary:
        # only in place of Python's own handler: a caller's SIG_IGN or handler is kept
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handler(self, signum, frame) -> None:
        if self.open:
            raise KeyboardInterrupt
        self.pending = True

    @contextlib.contextmanager
    def evaluating(self):
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt
        self.open = True
        try:
            yield
        finally:
            self.open = False
