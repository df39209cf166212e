"""rosbag2 recordings without ROS: reading, writing, evaluating, extracting."""
