"""depth_annotation: RGB-D capture, QC, calibration, monocular depth and export.

`core/` holds ROS-free algorithms (numpy in, numpy out); `nodes/` holds thin rclpy
shells over them; `cli.py` runs the same core offline.
"""

# The package is split across two directories in a development checkout: the
# source tree, and the rosidl-generated `msg`/`srv` installed into site-packages.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
