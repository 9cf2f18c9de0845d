"""Run one of our launch files with the real `launch` / `launch_ros` Python packages (as `ros2 launch` does).

python run_launch.py PREFIX LAUNCH_FILE [name:=value ...]

PREFIX is an ament prefix holding `share/depth_annotation` and `lib/depth_annotation/<exe>`
(what colcon installs); the caller puts the launch sources on PYTHONPATH. launch_ros imports
`composition_interfaces` for composable nodes, which we do not use and which is not built
here: a placeholder module stands in for it. Runs until SIGINT, then shuts the nodes down.
"""

from __future__ import annotations

import os
import sys
import types


def _placeholder_composition_interfaces() -> None:
    try:
        import composition_interfaces.srv  # noqa: F401
    except ImportError:
        pkg = types.ModuleType("composition_interfaces")
        srv = types.ModuleType("composition_interfaces.srv")
        for name in ("LoadNode", "UnloadNode", "ListNodes"):
            placeholder = type(name, (), {"Request": type("Request", (), {}), "Response": type("Response", (), {})})
            setattr(srv, name, placeholder)
        pkg.srv = srv
        sys.modules["composition_interfaces"] = pkg
        sys.modules["composition_interfaces.srv"] = srv


def main() -> int:
    prefix, launch_file, *arguments = sys.argv[1:]
    os.environ["AMENT_PREFIX_PATH"] = prefix + os.pathsep + os.environ.get("AMENT_PREFIX_PATH", "")
    _placeholder_composition_interfaces()
    import launch
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    print(f"launch from {launch.__file__}", flush=True)
    pairs = [a.split(":=", 1) for a in arguments]
    service = launch.LaunchService(argv=arguments)
    service.include_launch_description(
        launch.LaunchDescription(
            [IncludeLaunchDescription(PythonLaunchDescriptionSource(launch_file), launch_arguments=pairs)]
        )
    )
    return service.run()


if __name__ == "__main__":
    sys.exit(main())
