"""Thin rclpy shells: declare parameters, convert messages, call the core."""
