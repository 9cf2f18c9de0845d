"""ROS-free core: every algorithm of the suite, on numpy arrays and dataclasses."""
