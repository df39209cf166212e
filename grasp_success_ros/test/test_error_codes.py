"""Every error_code a failure record can carry has one home (core/judge.ERROR_CODES), and the
README's failure-record table documents exactly those codes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grasp_success_ros.core.judge import ERROR_CODES, GraspEvent, failure_record
from grasp_success_ros.core.policy import PolicyConfig
from grasp_success_ros.core.triggers import NOT_COMPLETED

README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_HEADER = "| `error_code` | meaning | what the grasp manager should do |"


def readme_error_codes() -> list[str]:
    lines = README.read_text().splitlines()
    start = lines.index(TABLE_HEADER) + 2  # past the header and the | --- | row
    codes = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        codes.append(re.match(r"\| `([a-z_]+)` \|", line).group(1))
    return codes


def test_the_readme_failure_record_table_lists_exactly_the_error_codes():
    codes = readme_error_codes()
    assert len(codes) == len(set(codes))
    assert set(codes) == set(ERROR_CODES)


def test_a_failure_record_with_an_undocumented_code_is_refused():
    with pytest.raises(ValueError, match="model_not_ready"):
        failure_record(GraspEvent(1, 0.0), PolicyConfig(), "model_not_ready", "no model")


def test_every_documented_code_makes_a_failure_record():
    for code in ERROR_CODES:
        record = failure_record(GraspEvent(1, 0.0), PolicyConfig(), code, "why")
        assert record.error_code == code and record.verdict is None


def test_the_bool_false_rejection_is_a_documented_code():
    assert NOT_COMPLETED[0] in ERROR_CODES


def test_grasp_verdict_has_a_constant_for_exactly_the_error_codes():
    """grasp_success_msgs/GraspVerdict's ERROR_* constants: C++ and Python clients compare
    error_code against them, so they must name exactly the codes the node can send."""
    pytest.importorskip("grasp_success_msgs", reason="source install/setup.bash (make build)")
    from grasp_success_ros.ros.verdicts import error_code_constants

    constants = error_code_constants()
    assert constants.pop("ERROR_NONE") == ""
    assert constants == {f"ERROR_{code.upper()}": code for code in ERROR_CODES}


def test_probabilities_inside_the_band_make_an_uncertain_record_that_keeps_them():
    from grasp_success_ros.core.judge import Frame, judge_selected
    from grasp_success_ros.core.policy import Selection

    band = PolicyConfig(threshold=0.8, threshold_failure=0.2)
    record = judge_selected(GraspEvent(1, 0.0), [Frame(0.1, "img")], Selection("ready", (0,)),
                            lambda images: [0.55], lambda msg: msg, band)
    assert record.verdict is None and record.error_code == "uncertain" and not record.ok
    assert record.judged  # the model answered
    assert record.confidence is None and record.p_success == 0.55
    assert record.frame_p_success == [0.55] and record.frame_stamps == [0.1]
    assert record.error == ("uncertain: P(success) 0.5500 lies between threshold_failure 0.2 "
                            "and threshold 0.8")
