"""Everything that touches rclpy: the node, its executor, DDS set-up, players."""
