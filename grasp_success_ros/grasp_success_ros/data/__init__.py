"""Images: files and class folders, ROS image messages, preprocessing, synthetic scenes."""
