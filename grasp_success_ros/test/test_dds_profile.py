"""The packaged Fast DDS profile and when the tools apply it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from grasp_success_ros.ros.dds_profile import (
    PROFILE_SCOPES,
    profile_path,
    profile_vars_for_scope,
    profile_vars_to_set,
    use_large_image_profile,
)
from grasp_success_ros.ros.rclpy_compat import (
    FAST_DDS_2_PROFILE_VAR,
    FAST_DDS_3_PROFILE_VAR,
    fast_dds_profile_vars,
)

READ_HERE = fast_dds_profile_vars()  # the name(s) this distribution's Fast DDS reads

NS = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}


def test_the_profile_gives_shared_memory_a_segment_larger_than_an_hd_frame():
    root = ET.parse(profile_path()).getroot()
    shm = [d for d in root.iterfind(".//f:transport_descriptor", NS)
           if d.findtext("f:type", namespaces=NS) == "SHM"]
    assert int(shm[0].findtext("f:segment_size", namespaces=NS)) >= 4 * 1280 * 720 * 3


def test_the_profile_is_the_default_participant_profile_and_keeps_udp_for_other_hosts():
    root = ET.parse(profile_path()).getroot()
    participant = root.find("f:participant", NS)
    assert participant.get("is_default_profile") == "true"
    types = {d.findtext("f:type", namespaces=NS)
             for d in root.iterfind(".//f:transport_descriptor", NS)}
    assert types == {"SHM", "UDPv4"}


def test_fast_dds_without_a_profile_gets_the_packaged_one_under_the_name_it_reads():
    env = {}
    assert use_large_image_profile(env) == profile_path()
    assert env == {var: str(profile_path()) for var in READ_HERE}


def test_each_distribution_gets_the_variable_its_fast_dds_reads():
    """Jazzy's Fast DDS 2.x reads only the old name; Kilted's 3.x the new one (its rmw warns
    at every start when the old one is set); an rclpy of unknown version gets both."""
    assert fast_dds_profile_vars((7, 1, 6)) == (FAST_DDS_2_PROFILE_VAR,)
    assert fast_dds_profile_vars((9, 1, 2)) == (FAST_DDS_3_PROFILE_VAR,)
    assert len(READ_HERE) == 1  # this rclpy reports its version


def test_a_profile_the_user_chose_is_left_alone_even_an_empty_one_under_either_name():
    for var in (FAST_DDS_2_PROFILE_VAR, FAST_DDS_3_PROFILE_VAR):
        for value in ("/etc/my_profile.xml", ""):
            env = {var: value}
            assert use_large_image_profile(env) is None
            assert env == {var: value}


def test_another_middleware_is_left_alone():
    env = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    assert use_large_image_profile(env) is None
    assert env == {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}


def test_the_launch_rule_sets_nothing_under_another_middleware():
    env = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    assert profile_vars_to_set(env, "/share/fastdds_large_images.xml") == {}


def test_the_launch_rule_leaves_a_profile_the_user_chose():
    for value in ("/etc/my_profile.xml", ""):
        assert profile_vars_to_set({"FASTDDS_DEFAULT_PROFILES_FILE": value}, "/p.xml") == {}


def test_the_launch_rule_points_fast_dds_at_the_given_profile_under_the_name_it_reads():
    for rmw in ({}, {"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}):
        assert profile_vars_to_set(rmw, "/p.xml") == {var: "/p.xml" for var in READ_HERE}


def test_the_launch_scope_sets_the_profile_for_the_rest_of_the_launch_only_when_asked():
    everything = {var: "/p.xml" for var in READ_HERE}
    assert profile_vars_for_scope("launch", {}, "/p.xml") == (everything, {})
    assert profile_vars_for_scope("node", {}, "/p.xml") == ({}, everything)
    assert profile_vars_for_scope("none", {}, "/p.xml") == ({}, {})


def test_no_scope_applies_an_empty_profile_or_overrides_the_users_choice():
    for scope in PROFILE_SCOPES:
        assert profile_vars_for_scope(scope, {}, "") == ({}, {})
        assert profile_vars_for_scope(
            scope, {"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"}, "/p.xml") == ({}, {})


def test_an_unknown_scope_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="launch, node, none"):
        profile_vars_for_scope("global", {}, "/p.xml")
