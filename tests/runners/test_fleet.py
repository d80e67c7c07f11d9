"""Execution-segment math: a table test, as k6-operator does."""

from __future__ import annotations

from fractions import Fraction

import pytest

from runners.fleet import segment, segment_sequence


@pytest.mark.parametrize(
    ("runners", "sequence", "segments"),
    [
        (1, "0,1", ["0:1"]),
        (2, "0,1/2,1", ["0:1/2", "1/2:1"]),
        (3, "0,1/3,2/3,1", ["0:1/3", "1/3:2/3", "2/3:1"]),
        (4, "0,1/4,1/2,3/4,1", ["0:1/4", "1/4:1/2", "1/2:3/4", "3/4:1"]),
    ],
)
def test_segments_cover_the_whole_load_once(runners: int, sequence: str, segments: list[str]) -> None:
    assert segment_sequence(runners) == sequence
    assert [segment(i, runners) for i in range(runners)] == segments
    total = sum(Fraction(b) - Fraction(a) for a, b in (s.split(":") for s in segments))
    assert total == 1


def test_bad_runner_index_is_rejected() -> None:
    with pytest.raises(ValueError, match="outside"):
        segment(4, 4)
    with pytest.raises(ValueError):
        segment_sequence(0)
