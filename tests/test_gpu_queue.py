"""The queue the web app's jobs and the API's requests share (localstt/gpu_queue.py)."""

from __future__ import annotations

import threading
import time

import pytest

from localstt.errors import QueueFull
from localstt.web.gpu_queue import GpuQueue


def wait_for(condition, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_turns_are_taken_in_the_order_they_came_one_at_a_time():
    queue = GpuQueue(max_waiting=8)
    order: list[int] = []
    running = []
    threads = []
    with queue.turn():  # held here, so every thread below has to wait
        for number in range(5):

            def take(number: int = number) -> None:
                with queue.turn():
                    running.append(number)
                    assert len(running) == 1, running  # never two at once
                    order.append(number)
                    running.remove(number)

            thread = threading.Thread(target=take)
            thread.start()
            threads.append(thread)
            wait_for(lambda n=number: len(queue) == n + 2, f"thread {number} to queue up")
    for thread in threads:
        thread.join(timeout=30)
    assert order == [0, 1, 2, 3, 4]
    assert len(queue) == 0


def test_a_refusable_request_is_refused_when_the_line_is_full_and_a_job_is_not():
    queue = GpuQueue(max_waiting=1)
    release = threading.Event()
    told: dict[str, list[int]] = {"request": [], "job": []}

    def wait_in_line(who: str, refuse_when_full: bool) -> None:
        with queue.turn(refuse_when_full=refuse_when_full, waiting=told[who].append):
            release.wait(30)

    with queue.turn():
        request = threading.Thread(target=wait_in_line, args=("request", True))
        request.start()
        wait_for(lambda: len(queue) == 2, "the request")
        full = "^1 requests are already waiting for the model; try again"
        with pytest.raises(QueueFull, match=full), queue.turn(refuse_when_full=True):
            pass
        job = threading.Thread(target=wait_in_line, args=("job", False))  # the web app's: waits
        job.start()
        wait_for(lambda: len(queue) == 3, "the job")
    release.set()
    request.join(timeout=30)
    job.join(timeout=30)
    assert told["request"] == [1] and told["job"][0] == 2  # how many were ahead when each queued up
    assert len(queue) == 0


def test_a_waiter_that_fails_gives_its_place_up():
    queue = GpuQueue(max_waiting=4)

    def fail(ahead: int) -> None:
        raise KeyboardInterrupt

    with queue.turn():
        with pytest.raises(KeyboardInterrupt), queue.turn(waiting=fail):
            pass
        assert len(queue) == 1
    with queue.turn():  # the line is not stuck behind the one that left
        assert len(queue) == 1
