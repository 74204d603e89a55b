"""The context-rot benchmark's rot point, with lengths a bounded run did not measure."""

from __future__ import annotations

from benchmarks.context_rot import rot_point


def test_rot_point_is_the_first_length_below_half_the_shortest() -> None:
    assert rot_point([1000, 2000, 4000], [1.0, 0.6, 0.4]) == 4000
    assert rot_point([1000, 2000], [1.0, 1.0]) is None


def test_lengths_not_measured_are_skipped_not_counted_as_rot() -> None:
    assert rot_point([1000, 8000, 16000], [1.0, None, None]) is None
    assert rot_point([1000, 8000, 16000], [1.0, 1.0, None]) is None
    assert rot_point([1000, 8000, 16000], [1.0, 0.0, None]) == 8000
    assert rot_point([1000, 2000], [None, 0.0]) is None
