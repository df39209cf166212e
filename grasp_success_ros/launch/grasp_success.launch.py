"""Start grasp_success_node beside a hand driver.

Include it from your robot's launch file, e.g.::

    IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            [FindPackageShare('grasp_success_ros'), '/launch/grasp_success.launch.py']),
        launch_arguments={'model_path': '/path/model.keras',
                          'camera_topic': '/allegro/camera/image_raw'}.items())
"""

import os

from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from grasp_success_ros.ros.dds_profile import profile_vars_for_scope
from launch import LaunchDescription

ARGUMENTS = (
    ("model_path", "", "Model file (.keras, seed .h5, .onnx, .tflite); card <stem>.card.json "
     "beside it."),
    ("camera_topic", "/camera/image_raw", "Hand camera image topic (sensor_msgs/Image); with "
     "image_transport compressed, its /compressed sub-topic is used."),
    ("trigger_topic", "/grasp_completed", "Grasp-completed event topic from the grasp manager."),
    ("namespace", "", "Namespace for the node and its output topics."),
    ("params_file", PathJoinSubstitution([FindPackageShare("grasp_success_ros"), "config",
                                          "grasp_success.yaml"]),
     "Parameters file; defaults to the installed config/grasp_success.yaml."),
    ("use_sim_time", "false", "Use /clock (bag replay) instead of the wall clock."),
    ("autostart", "", "true: configure and activate at start; false: wait for a lifecycle "
     "manager; '' keeps the params file's value."),
    ("log_level", "info", "The node's log level (debug, info, warn, error, fatal)."),
    ("respawn", "false", "Restart the node's process when it exits (with autostart it "
     "configures and activates itself again)."),
    ("respawn_delay", "2.0", "Seconds to wait before a respawn."),
    ("fastdds_profile", PathJoinSubstitution([FindPackageShare("grasp_success_ros"), "config",
                                              "fastdds_large_images.xml"]),
     "Fast DDS profile (a 16 MB shared-memory segment, so camera-sized images are not lost "
     "as UDP fragments); '' to leave DDS as configured. Not applied when "
     "FASTRTPS_DEFAULT_PROFILES_FILE or FASTDDS_DEFAULT_PROFILES_FILE is already set or "
     "RMW_IMPLEMENTATION is another middleware."),
    ("fastdds_profile_scope", "node", "Where the profile applies: 'node' (this node's "
     "process only), 'launch' (every process started after this in the launch, e.g. a "
     "camera driver: the segment belongs to the publisher) or 'none'."),
)


def _profile_vars(context) -> tuple[dict, dict]:
    """(for the rest of the launch, for the node alone), by the rule the package's tools
    use (ros/dds_profile.py)."""
    return profile_vars_for_scope(LaunchConfiguration("fastdds_profile_scope").perform(context),
                                  os.environ, LaunchConfiguration("fastdds_profile")
                                  .perform(context))


def _dds_profile(context):
    """With scope 'launch': set the profile for the processes started after this (a camera
    driver included)."""
    launch_vars, _ = _profile_vars(context)
    return [SetEnvironmentVariable(var, value) for var, value in launch_vars.items()]


def _overrides(context) -> dict:
    """Parameters that override the params file only when their argument is given."""
    overrides = {"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"),
                                                value_type=bool)}
    if LaunchConfiguration("model_path").perform(context):
        overrides["model_path"] = ParameterValue(LaunchConfiguration("model_path"),
                                                 value_type=str)
    if LaunchConfiguration("autostart").perform(context):
        overrides["autostart"] = ParameterValue(LaunchConfiguration("autostart"),
                                                value_type=bool)
    return overrides


def _flag(text: str) -> bool:
    """A launch argument as a boolean, spelt as ROS spells them."""
    return text.strip().lower() in ("true", "1", "yes")


def _node(context):
    """The node, its log level, respawn and (scope 'node') its own DDS profile."""
    camera = LaunchConfiguration("camera_topic")
    _, node_vars = _profile_vars(context)
    return [Node(
        package="grasp_success_ros",
        executable="grasp_success_node",
        name="grasp_success_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[LaunchConfiguration("params_file"), _overrides(context)],
        remappings=[("camera/image_raw", camera),
                    ("camera/image_raw/compressed", [camera, "/compressed"]),
                    ("grasp_completed", LaunchConfiguration("trigger_topic"))],
        ros_arguments=["--log-level", LaunchConfiguration("log_level").perform(context)],
        respawn=_flag(LaunchConfiguration("respawn").perform(context)),
        respawn_delay=float(LaunchConfiguration("respawn_delay").perform(context)),
        additional_env=node_vars,
    )]


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument(name, default_value=default, description=description)
            for name, default, description in ARGUMENTS]
    return LaunchDescription([*args, OpaqueFunction(function=_dds_profile),
                              OpaqueFunction(function=_node)])
