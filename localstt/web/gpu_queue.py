"""One queue in front of the models, shared by the web app's jobs and the API's requests.

    with queue.turn(refuse_when_full=True, waiting=tell_the_user):   # first come, first served
        ...                                                           # run the model

One turn runs at a time; the others wait in the order they came. A request that may be refused (the
API's) gets QueueFull when `max_waiting` others already wait, so that a flood of requests is answered
at once ("try again in a moment") instead of piling up. The web app's jobs are never refused here:
Gradio's own queue (of the same length) has already admitted them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from localstt.errors import QueueFull


class GpuQueue:
    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._line: deque[object] = deque()  # the first one has the turn
        self._changed = threading.Condition()

    def __len__(self) -> int:
        """Turns running or waiting now."""
        with self._changed:
            return len(self._line)

    @contextmanager
    def turn(
        self, *, refuse_when_full: bool = False, waiting: Callable[[int], None] | None = None
    ) -> Iterator[None]:
        """Wait for this caller's turn and hold it for the block.

        Args:
            refuse_when_full: raise QueueFull instead of waiting when `max_waiting` others wait.
            waiting: called with the number of turns ahead whenever that number changes while waiting.

        Raises:
            QueueFull: see `refuse_when_full`.
        """
        me = object()
        with self._changed:
            if refuse_when_full and len(self._line) > self.max_waiting:  # the first one is running
                raise QueueFull(
                    f"{len(self._line) - 1} requests are already waiting for the model; "
                    "try again in a moment."
                )
            self._line.append(me)
            try:
                told = -1
                while self._line[0] is not me:
                    ahead = self._line.index(me)
                    if waiting is not None and ahead != told:
                        told = ahead
                        waiting(ahead)
                    self._changed.wait()
            except BaseException:  # e.g. the waiting callback failed: give the place up
                self._line.remove(me)
                self._changed.notify_all()
                raise
        try:
            yield
        finally:
            with self._changed:
                self._line.remove(me)
                self._changed.notify_all()
