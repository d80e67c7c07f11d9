"""Fleet math: how N runners split one module's load (k6 execution segments).

Runner i of N runs segment i/N:(i+1)/N of the sequence 0,1/N,...,1, so k6 itself
divides VUs and arrival rates exactly, with no rounding drift across runners.
"""

from __future__ import annotations

from fractions import Fraction

MAX_RUNNERS = 64  # k6 runners per module


def _frac(value: Fraction) -> str:
    if value == 0:
        return "0"
    if value == 1:
        return "1"
    return f"{value.numerator}/{value.denominator}"


def segment_sequence(runners: int) -> str:
    """`--execution-segment-sequence` for N equal runners, e.g. '0,1/4,1/2,3/4,1'."""
    if runners < 1:
        raise ValueError("runners must be >= 1")
    return ",".join(_frac(Fraction(i, runners)) for i in range(runners + 1))


def segment(index: int, runners: int) -> str:
    """`--execution-segment` for runner `index` (0-based) of N, e.g. '1/4:1/2'."""
    if not 0 <= index < runners:
        raise ValueError(f"runner index {index} outside 0..{runners - 1}")
    return f"{_frac(Fraction(index, runners))}:{_frac(Fraction(index + 1, runners))}"
