"""Our msg/ and srv/ types are real rosidl interfaces that cross process boundaries over DDS."""

from pathlib import Path

from depth_annotation.msg import CaptureStatus, DepthQuality, StreamStats
from depth_annotation.srv import Calibrate

HELPERS = Path(__file__).parent / "helpers"


def test_generated_types_have_definitions():
    assert DepthQuality.FLAGGED == 2
    assert CaptureStatus.STATE_WARMING_UP == "warming_up"
    # Fields generated from the .msg files, with their ROS types.
    fields = DepthQuality.get_fields_and_field_types()
    assert fields["grid_valid_fraction"] == "sequence<float>"
    assert fields["header"] == "std_msgs/Header"
    assert CaptureStatus.get_fields_and_field_types()["streams"] == "sequence<depth_annotation/StreamStats>"
    assert Calibrate.Response.get_fields_and_field_types()["camera_info"] == "sensor_msgs/CameraInfo"
    assert StreamStats().frames_dropped == 0


def test_message_crosses_processes(ros, procs):
    import sys

    peer = procs.command([sys.executable, str(HELPERS / "interface_peer.py")], "interface_peer")
    node = ros.node("test_pub")
    pub = node.create_publisher(DepthQuality, "echo_in", 10)
    got = []
    node.create_subscription(DepthQuality, "echo_out", got.append, 10)

    msg = DepthQuality(status=DepthQuality.WARN, valid_fraction=0.3, reasons=["low_coverage"])
    msg.header.stamp.sec = 42
    msg.grid_valid_fraction = [0.5] * 16

    def published_and_received() -> bool:
        if pub.get_subscription_count() > 0:
            pub.publish(msg)
        return bool(got)

    assert ros.spin_until(published_and_received, timeout=30), peer.output()
    echoed = got[0]
    assert echoed.valid_fraction == 0.6000000238418579 or abs(echoed.valid_fraction - 0.6) < 1e-6
    assert list(echoed.reasons) == ["low_coverage", "echoed"]
    assert echoed.header.stamp.sec == 42 and len(echoed.grid_valid_fraction) == 16


def test_service_call_crosses_processes(ros, procs):
    import sys

    peer = procs.command([sys.executable, str(HELPERS / "interface_peer.py")], "interface_peer")
    node = ros.node("test_client")
    client = node.create_client(Calibrate, "calibrate")
    assert ros.spin_until(lambda: client.service_is_ready(), timeout=30), peer.output()
    req = Calibrate.Request(board_type="charuco", squares_x=7, squares_y=5, square_length_m=0.04, min_views=20)
    future = client.call_async(req)
    assert ros.spin_until(future.done, timeout=15)
    res = future.result()
    assert res.success is True
    assert res.message == "charuco:7x5"
    assert abs(res.rms_px - 0.4) < 1e-6
    assert len(res.per_view_error_px) == 20
    assert list(res.k)[:3] == [1.0, 0.0, 2.0]
    assert res.camera_info.width == 640
