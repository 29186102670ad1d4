"""Fair share of a target (broker/admission.py): per-caller limits and fair hand-over, with threads."""

from __future__ import annotations

import threading
import time

import pytest

from broker.admission import Admission
from broker.problems import TooManyRequests, Unavailable


def test_a_caller_over_its_limit_is_refused_at_once_with_retry_after() -> None:
    admission = Admission(default_capacity=4)
    held = [admission.admit("t", "a", per_caller=2), admission.admit("t", "a", per_caller=2)]
    started = time.monotonic()
    with pytest.raises(TooManyRequests) as refused:
        admission.admit("t", "a", per_caller=2)
    assert time.monotonic() - started < 0.1  # not after a pool wait
    assert refused.value.status == 429 and refused.value.code == "too_many_requests"
    assert refused.value.retry_after == 1 and refused.value.extra["limit"] == 2
    # another caller is not affected, and another target is not either
    with admission.admit("t", "b", per_caller=2), admission.admit("u", "a", per_caller=2):
        assert admission.stats("t").running == {"a": 2, "b": 1}
    for slot in held:
        slot.release()
    assert admission.stats("t").running == {}


def test_a_slot_is_released_once_even_if_released_twice() -> None:
    admission = Admission(default_capacity=1)
    slot = admission.admit("t", "a", per_caller=1)
    slot.release()
    slot.release()
    with admission.admit("t", "a", per_caller=1):
        assert admission.stats("t").running == {"a": 1}


def test_a_full_target_times_out_with_target_busy_and_leaves_no_waiter() -> None:
    admission = Admission(default_capacity=1, queue_wait_seconds=0.2)
    with admission.admit("t", "a", per_caller=1):
        with pytest.raises(Unavailable) as busy:
            admission.admit("t", "b", per_caller=1)
        assert busy.value.code == "target_busy" and busy.value.retry_after >= 1
        assert admission.stats("t").waiting == {}
    with admission.admit("t", "b", per_caller=1):
        pass


def test_a_freed_slot_goes_to_the_caller_running_least_not_the_first_in_line() -> None:
    admission = Admission(default_capacity=2, queue_wait_seconds=5)
    a1 = admission.admit("t", "a", per_caller=3)
    b1 = admission.admit("t", "b", per_caller=3)
    order: list[str] = []

    def wait(caller: str) -> None:
        slot = admission.admit("t", caller, per_caller=3)
        order.append(caller)
        slot.release()

    first = threading.Thread(target=wait, args=("a",))  # "a" queues first ...
    first.start()
    while admission.stats("t").waiting != {"a": 1}:
        time.sleep(0.005)
    second = threading.Thread(target=wait, args=("c",))  # ... "c" runs nothing yet
    second.start()
    while admission.stats("t").waiting != {"a": 1, "c": 1}:
        time.sleep(0.005)
    a1.release()  # "a" now runs 0, "c" runs 0: the oldest waiter wins the tie
    first.join(5)
    b1.release()
    second.join(5)
    assert order == ["a", "c"]


def test_a_busy_caller_cannot_starve_a_newcomer() -> None:
    admission = Admission(default_capacity=2, queue_wait_seconds=5)
    hog = [admission.admit("t", "hog", per_caller=4), admission.admit("t", "hog", per_caller=4)]
    got: list[str] = []
    threads = [threading.Thread(target=lambda c=c: (admission.admit("t", c, per_caller=4).release(), got.append(c)))
               for c in ("hog", "hog", "new")]
    for t in threads:
        t.start()
        time.sleep(0.02)
    while sum(admission.stats("t").waiting.values()) != 3:
        time.sleep(0.005)
    hog[0].release()  # the hog runs 1, the newcomer 0: the newcomer gets the slot though it queued last
    while not got:
        time.sleep(0.005)
    assert got[0] == "new"
    hog[1].release()
    for t in threads:
        t.join(5)
    assert sorted(got) == ["hog", "hog", "new"]
