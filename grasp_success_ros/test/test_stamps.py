"""Time conversions have one home (core/stamps.py): nanoseconds, (sec, nanosec) and seconds
convert the same way on the live side and the bag side, and nowhere else in the package."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grasp_success_ros.core.stamps import (
    NS_PER_S,
    ns_to_s,
    s_to_ns,
    split_ns,
    stamp_ns,
    stamp_s,
    to_ns,
)

PACKAGE = Path(__file__).resolve().parents[1] / "grasp_success_ros"
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
TODAY_NS = 1_780_000_000 * NS_PER_S + 123_456_789  # mid-2026, on the nanosecond
# Files that still convert on their own, each until the lead's rewrite switches it to
# core/stamps.py (issue "One engine for the live node and the recordings"). Empty it then.
NOT_YET_CONVERTED: set[str] = set()  # every module converts through core/stamps
# An nanosecond/second factor used as one: 1_000_000_000 or 10**9 anywhere, a float 1e9 or
# 1e-9 (any spelling) beside * or /. A bare tolerance (eps = 1e-9) converts nothing.
_INT_FACTOR = r"\b1_?000_?000_?000\b|\b10\s*\*\*\s*9\b"
_FLOAT = r"\b\d+(?:\.\d*)?[eE][+-]?0*9\b"
CONVERSION = re.compile(rf"{_INT_FACTOR}|[*/]\s*{_FLOAT}|{_FLOAT}\s*[*/]")


@dataclass
class Stamp:
    """What rosbags and rclpy messages share: sec and nanosec."""

    sec: int
    nanosec: int


def test_a_stamp_splits_and_joins_without_loss():
    assert split_ns(TODAY_NS) == (1_780_000_000, 123_456_789)
    assert to_ns(*split_ns(TODAY_NS)) == TODAY_NS


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_every_nanosecond_count_round_trips_through_sec_and_nanosec(ns):
    sec, nanosec = split_ns(ns)
    assert 0 <= nanosec < NS_PER_S
    assert to_ns(sec, nanosec) == ns


def test_zero_and_negative_times_split_as_builtin_interfaces_holds_them():
    assert split_ns(0) == (0, 0)
    assert split_ns(-1) == (-1, NS_PER_S - 1)
    assert split_ns(-NS_PER_S) == (-1, 0)
    assert ns_to_s(-1_500_000_000) == -1.5
    assert s_to_ns(-1.5) == -1_500_000_000
    assert s_to_ns(0.0) == 0 and s_to_ns(-0.0) == 0


def test_seconds_become_the_nearest_nanosecond():
    assert s_to_ns(1.4e-9) == 1
    assert s_to_ns(1.6e-9) == 2
    assert s_to_ns(-1.6e-9) == -2
    assert s_to_ns(0.1) == 100_000_000
    assert s_to_ns(1 / 3) == 333_333_333


@given(st.floats(min_value=-4e9, max_value=4e9, allow_nan=False))
def test_seconds_to_nanoseconds_is_the_exact_value_rounded(seconds):
    exact = Fraction(seconds) * NS_PER_S
    assert abs(s_to_ns(seconds) - exact) <= Fraction(1, 2)


@given(st.integers(min_value=0, max_value=4_000_000_000 * NS_PER_S))
def test_nanoseconds_to_seconds_is_the_nearest_float(ns):
    seconds = ns_to_s(ns)
    exact = Fraction(ns, NS_PER_S)
    for neighbour in (math.nextafter(seconds, -math.inf), math.nextafter(seconds, math.inf)):
        assert abs(Fraction(neighbour) - exact) >= abs(Fraction(seconds) - exact)


def test_todays_epoch_times_survive_seconds_and_back_within_the_floats_resolution():
    # a float at 1.78e9 s resolves 238 ns: the round trip is off by at most half of that
    for ns in range(TODAY_NS, TODAY_NS + 5000, 7):
        assert abs(s_to_ns(ns_to_s(ns)) - ns) <= 119
    # and a float that came from a stamp goes back to the same float
    seconds = ns_to_s(TODAY_NS)
    assert ns_to_s(s_to_ns(seconds)) == seconds


def test_a_stamps_seconds_do_not_depend_on_the_path_that_computed_them():
    """The node's receipt (clock nanoseconds) and a bag's frame stamp (sec, nanosec) of the
    same instant are the same float: ``ns * 1e-9`` was not, for about half of them."""
    for ns in range(TODAY_NS, TODAY_NS + 1000, 3):
        assert stamp_s(Stamp(*split_ns(ns))) == ns_to_s(ns)


def test_stamps_of_any_message_library_convert_alike():
    assert stamp_ns(Stamp(sec=5, nanosec=7)) == 5 * NS_PER_S + 7
    assert stamp_s(Stamp(sec=5, nanosec=500_000_000)) == 5.5
    assert stamp_s(Stamp(sec=0, nanosec=0)) == 0.0


def test_not_a_number_is_no_instant():
    with pytest.raises(ValueError):
        s_to_ns(float("nan"))
    with pytest.raises(OverflowError):
        s_to_ns(float("inf"))


def _conversions(path: Path) -> list[str]:
    return [f"{path}:{n}: {line.strip()}" for n, line in
            enumerate(path.read_text().splitlines(), 1) if CONVERSION.search(line)]


def test_the_pattern_finds_each_spelling_of_a_conversion():
    found = [s for s in ("ns * 1e-9", "round(t * 1e9)", "x / 1e9", "0.5e9 / fps",
                         "divmod(ns, 1_000_000_000)", "s * 10**9", "ns // 1000000000",
                         "1.0e-09 * n") if CONVERSION.search(s)]
    assert len(found) == 8
    assert not CONVERSION.search("eps = 1e-9") and not CONVERSION.search("max(d, 1e-9)")


def test_no_module_but_core_stamps_converts_time_on_its_own():
    files = [p for p in sorted(PACKAGE.rglob("*.py")) + sorted(SCRIPTS.glob("*.py"))
             if p.relative_to(PACKAGE if PACKAGE in p.parents else SCRIPTS).as_posix()
             not in {"core/stamps.py", *NOT_YET_CONVERTED}]
    found = [hit for p in files for hit in _conversions(p)]
    assert not found, "convert with grasp_success_ros.core.stamps:\n" + "\n".join(found)


def test_the_allow_list_names_only_files_that_still_need_it():
    stale = sorted(name for name in NOT_YET_CONVERTED if not _conversions(PACKAGE / name))
    assert not stale, f"remove from NOT_YET_CONVERTED: {stale}"
