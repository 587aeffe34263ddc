"""Memory given back after a surge (cti.memory)."""

from __future__ import annotations

import ctypes.util

import pytest

from cti.memory import AfterPeak, release_free_memory


def rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_peak_passes_when_the_floor_falls_below_half_of_it() -> None:
    watch = AfterPeak(least=200)
    assert [watch.passed(n) for n in (50, 150, 120, 60)] == [False] * 4  # never a surge
    assert [watch.passed(n) for n in (400, 900, 600, 460)] == [False] * 4
    assert watch.passed(440)  # under half of 900
    assert not watch.passed(300)  # once: the peak starts again from 440
    assert watch.passed(219)  # under half of 440, itself a peak of 200 or more
    assert not watch.passed(150)  # from 219: not under half of it


@pytest.mark.skipif(not ctypes.util.find_library("c"), reason="no C library to ask")
def test_freed_calls_memory_goes_back_to_the_system() -> None:
    # Objects of a surge: blocks from the C allocator (over 512 bytes), all freed but the
    # last one, which keeps the heap's top where it was.
    blocks = [bytes(1000) + i.to_bytes(4, "little") for i in range(100_000)]
    last = blocks[-1]
    del blocks
    before = rss_kib()
    assert release_free_memory()
    after = rss_kib()
    assert before - after > 50_000, (before, after)  # ~100 MB were free inside the heap
    assert last
