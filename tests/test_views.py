"""views: the kept views are views of the buffer asked about, never of one since replaced."""

import torch

from hsd_bench.views import PrefixViews, RowViews


def test_row_views_are_made_once_per_buffer():
    rows_of = RowViews()
    tokens = torch.arange(12).view(3, 4)
    first = rows_of(tokens)
    assert rows_of(tokens) is first and [r.tolist() for r in first] == tokens.tolist()
    other = torch.zeros(2, 4, dtype=torch.long)
    assert [r.data_ptr() for r in rows_of(other)] == [other[0].data_ptr(), other[1].data_ptr()]


def test_prefix_views_are_made_once_per_buffer_and_size():
    prefix = PrefixViews()
    buf = torch.arange(10)
    view = prefix(buf, 4)
    assert prefix(buf, 4) is view and view.tolist() == [0, 1, 2, 3]
    assert prefix(buf, 6).tolist() == list(range(6))
    buf[0] = 7  # a view, not a copy
    assert view[0].item() == 7
    other = torch.arange(10, 20)  # another buffer of the same shape: its own views
    assert prefix(other, 4).tolist() == [10, 11, 12, 13]
