"""device_copy: the driver copies' stand-ins are the torch ops they replace, and the pinned ring
never rewrites a slot before the copy from it has run."""

import pytest
import torch

from hsd_bench.device_copy import IntWriter, copy_span, pack


def test_copy_span_is_the_slice_copy():
    src = torch.arange(10)
    for dst_start, src_start, n in [(0, 0, 10), (2, 5, 3), (7, 0, 3), (0, 9, 1), (4, 4, 0)]:
        dst, want = torch.full((10,), -1), torch.full((10,), -1)
        want[dst_start : dst_start + n] = src[src_start : src_start + n]
        copy_span(dst, dst_start, src, src_start, n)
        assert torch.equal(dst, want), (dst_start, src_start, n)
    with pytest.raises(ValueError, match="n=-1"):
        copy_span(torch.zeros(3), 0, torch.zeros(3), 0, -1)
    with pytest.raises(RuntimeError):  # past the end: the torch op's own error, not a silent short copy
        copy_span(torch.zeros(3), 2, torch.zeros(3), 0, 2)


def test_pack_is_the_cat():
    a, b = torch.tensor([3, 1, 4]), torch.tensor([1, 5, 9, 2])
    out = torch.zeros(7, dtype=torch.long)
    assert pack((a, b), out) is out and out.tolist() == [3, 1, 4, 1, 5, 9, 2]
    with pytest.raises(ValueError, match=r"\[3, 4\] values, out 8"):
        pack((a, b), torch.zeros(8, dtype=torch.long))


def test_int_writer_writes_where_told():
    w = IntWriter(8)
    row, scalar, one = torch.zeros(5, dtype=torch.long), torch.zeros((), dtype=torch.long), torch.zeros(1, dtype=torch.long)
    w.write(row, 3, 42)
    w.write(scalar, 0, 7)
    w.write(one, 0, -2)
    assert row.tolist() == [0, 0, 0, 42, 0] and scalar.item() == 7 and one.item() == -2
    with pytest.raises(ValueError, match="slots=6"):
        IntWriter(6)


class _Clock:
    """Stand-in events: an event is 'run' once the host has synchronised it, and covers every copy
    queued before it was recorded."""

    def __init__(self):
        self.now = 0  # copies queued so far
        self.done = 0  # copies known to have run

    def event(self):
        clock = self

        class Event:
            at = None

            def record(self):
                self.at = clock.now

            def synchronize(self):
                clock.done = max(clock.done, self.at)

        return Event()


@pytest.mark.parametrize("slots", [4, 8, 64])
def test_the_ring_rewrites_a_slot_only_after_its_copy_ran(slots):
    clock = _Clock()
    w = IntWriter(slots, event=clock.event)
    last_copy = {}  # slot -> the number of the copy that last read it
    for copy in range(1, 5 * slots + 3):
        slot = w._advance()
        if slot in last_copy:
            assert clock.done >= last_copy[slot], (slot, copy)
        clock.now = copy  # the copy from this slot is queued
        last_copy[slot] = copy
    # a wait only when entering a quarter used before: never more than four per lap
    assert 0 < w.waits <= 4 * (5 * slots + 2) // slots
