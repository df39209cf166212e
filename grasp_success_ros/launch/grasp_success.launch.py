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

from grasp_success_ros.ros.dds_profile import profile_vars_to_set
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
    ("fastdds_profile", PathJoinSubstitution([FindPackageShare("grasp_success_ros"), "config",
                                              "fastdds_large_images.xml"]),
     "Fast DDS profile for the processes of this launch (a 16 MB shared-memory segment, so "
     "camera-sized images are not lost as UDP fragments); '' to leave DDS as configured. "
     "Not applied when FASTRTPS_DEFAULT_PROFILES_FILE is already set or RMW_IMPLEMENTATION "
     "is another middleware."),
)


def _dds_profile(context):
    """Set the profile for the processes started after this (a camera driver included), by
    the same rule as the package's tools (ros/dds_profile.py)."""
    profile = LaunchConfiguration("fastdds_profile").perform(context)
    if not profile:
        return []
    return [SetEnvironmentVariable(var, value)
            for var, value in profile_vars_to_set(os.environ, profile).items()]


def _node(context):
    """The node; model_path overrides the params file only when it is given."""
    camera = LaunchConfiguration("camera_topic")
    overrides = {"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"),
                                                value_type=bool)}
    if LaunchConfiguration("model_path").perform(context):
        overrides["model_path"] = ParameterValue(LaunchConfiguration("model_path"),
                                                 value_type=str)
    return [Node(
        package="grasp_success_ros",
        executable="grasp_success_node",
        name="grasp_success_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[("camera/image_raw", camera),
                    ("camera/image_raw/compressed", [camera, "/compressed"]),
                    ("grasp_completed", LaunchConfiguration("trigger_topic"))],
    )]


def generate_launch_description() -> LaunchDescription:
    args = [DeclareLaunchArgument(name, default_value=default, description=description)
            for name, default, description in ARGUMENTS]
    return LaunchDescription([*args, OpaqueFunction(function=_dds_profile),
                              OpaqueFunction(function=_node)])
