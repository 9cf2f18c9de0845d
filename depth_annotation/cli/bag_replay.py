"""`depth-annotation record` / `play`: rosbag2 (mcap or sqlite3) recording and replay without `ros2 bag`.

Messages are recorded and replayed as serialized CDR bytes (never re-encoded),
with their receive times and the publishers' reliability and durability, so
bags interoperate with `ros2 bag record` / `ros2 bag play` both ways: `play`
reads every bag rosbag2 writes (metadata.yaml versions 4-9, QoS as the old YAML
string or the new list, split bags with or without metadata.yaml) through
`dataset.bag_io`, which checks each read against the storage's own counts.
The middleware is left as the user configured it (no DDS variables set here).
"""

from __future__ import annotations

import importlib
import math
import shutil
import time
from pathlib import Path

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from depth_annotation.common import StopSignals
from depth_annotation.dataset import BagError, bag_io

# rcl reads remap rules from the argv it is given, even outside `--ros-args` (the deprecated
# `from:=to` syntax): the CLI's own arguments (`--remap /a:=/b`) must not reach it.
RCL_ARGS = ["depth-annotation"]


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy class."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def _qos_to_rosbags(qos: QoSProfile):
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(sec=0, nsec=0)
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=int(qos.depth or 10),
        reliability=QosReliability.BEST_EFFORT
        if qos.reliability == ReliabilityPolicy.BEST_EFFORT
        else QosReliability.RELIABLE,
        durability=QosDurability.TRANSIENT_LOCAL
        if qos.durability == DurabilityPolicy.TRANSIENT_LOCAL
        else QosDurability.VOLATILE,
        deadline=zero,
        lifespan=zero,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero,
        avoid_ros_namespace_conventions=False,
    )


def _default_qos(topic: str, msgtype: str) -> QoSProfile:
    if topic == "/tf_static":
        return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    if msgtype in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"):
        return QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
    return QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def check_duration(duration_s: float) -> None:
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"--duration must be a positive number of seconds, got {duration_s}")


def record(
    out: Path,
    topics: list[str],
    *,
    duration_s: float,
    storage: str = "mcap",
    distro: str = "kilted",
    discovery_s: float = 10.0,
    log=print,
    stop: StopSignals | None = None,
) -> dict[str, int]:
    """Record `topics` for `duration_s` seconds (after they appear), or until SIGINT/SIGTERM; returns counts.

    The bag directory is created first, so an unwritable place fails (OSError) before any
    waiting; a recording that never starts (no publisher) removes it again.
    """
    check_duration(duration_s)
    writer = bag_io.BagWriter(out, storage=storage, distro=distro)
    counts = {t: 0 for t in topics}
    with stop if stop is not None else StopSignals(interrupt=False) as stop:
        writer.open()
        rclpy.init(args=RCL_ARGS, signal_handler_options=SignalHandlerOptions.NO)
        node = rclpy.create_node("depth_annotation_recorder")
        started = False
        try:
            deadline = time.monotonic() + discovery_s
            types: dict[str, str] = {}
            while time.monotonic() < deadline and len(types) < len(topics) and not stop.requested:
                for name, tps in node.get_topic_names_and_types():
                    if name in topics and tps:
                        types[name] = tps[0]
                rclpy.spin_once(node, timeout_sec=0.1)
            missing = [t for t in topics if t not in types]
            if missing:
                why = "stopped by signal" if stop.requested else f"within {discovery_s:.0f} s"
                raise BagError(f"no publisher for {', '.join(missing)} ({why}); nothing recorded")
            started = True
            for topic, msgtype in types.items():
                pubs = node.get_publishers_info_by_topic(topic)
                qos = pubs[0].qos_profile if pubs else _default_qos(topic, msgtype)
                writer.add_topic(topic, msgtype, qos=[_qos_to_rosbags(qos)])
                sub_qos = QoSProfile(depth=200, reliability=qos.reliability, durability=qos.durability)

                def on_raw(data, topic=topic):
                    writer.write_raw(topic, time.time_ns(), data)
                    counts[topic] += 1

                node.create_subscription(message_class(msgtype), topic, on_raw, sub_qos, raw=True)
            log(f"recording {len(types)} topics to {out} for {duration_s:.1f} s")
            end = time.monotonic() + duration_s
            while time.monotonic() < end and not stop.requested:
                rclpy.spin_once(node, timeout_sec=0.05)
            if stop.requested:
                log(f"stopped by {stop.name}: bag finished")
        finally:
            node.destroy_node()
            rclpy.try_shutdown()
            writer.close()
            if not started:
                shutil.rmtree(out, ignore_errors=True)
    return counts


def playback_qos(info: bag_io.TopicInfo) -> QoSProfile:
    """The recorded reliability and durability (and depth, when recorded) over our defaults for the type."""
    qos = _default_qos(info.topic, info.msgtype)
    recorded = bag_io.recorded_qos(info.qos)
    if recorded is not None:
        qos.reliability = ReliabilityPolicy.RELIABLE if recorded.reliable else ReliabilityPolicy.BEST_EFFORT
        qos.durability = DurabilityPolicy.TRANSIENT_LOCAL if recorded.transient_local else DurabilityPolicy.VOLATILE
        if recorded.depth:
            qos.depth = recorded.depth
    return qos


def parse_remaps(remaps: list[str] | None) -> dict[str, str]:
    """`FROM:=TO` pairs (as `ros2 bag play --remap`) -> {FROM: TO}."""
    out: dict[str, str] = {}
    for r in remaps or []:
        src, sep, dst = r.partition(":=")
        if not sep or not src.startswith("/") or not dst.startswith("/"):
            raise ValueError(f"--remap {r!r}: expected /FROM:=/TO")
        out[src] = dst
    return out


def play(
    bag: Path,
    *,
    rate: float = 1.0,
    topics: list[str] | None = None,
    wait_subscribers_s: float = 10.0,
    clock_hz: float | None = None,
    loop: bool = False,
    remap: dict[str, str] | None = None,
    log=print,
    stop: StopSignals | None = None,
) -> int:
    """Publish a bag's messages with their recorded spacing (scaled by `rate`) and QoS; returns the count.

    Topics whose message type is not installed here are skipped with a line (as `ros2 bag play`
    does), unless asked for by name. A read that returns fewer messages than the bag's storage
    holds raises `BagShortReadError` once the rest has been published. `clock_hz` publishes
    /clock (rosgraph_msgs/Clock) with the bag's time at that rate, as `ros2 bag play --clock`;
    `loop` plays again from the start until SIGINT/SIGTERM (which end playback normally);
    `remap` publishes a recorded topic under another name.
    """
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError("rate must be positive")
    if clock_hz is not None and not (math.isfinite(clock_hz) and clock_hz > 0):
        raise ValueError("--clock rate must be positive")
    remap = remap or {}
    sent = 0
    with stop if stop is not None else StopSignals(interrupt=False) as stop:
        rclpy.init(args=RCL_ARGS, signal_handler_options=SignalHandlerOptions.NO)
        node = rclpy.create_node("depth_annotation_player")
        try:
            with bag_io.open_bag(bag) as reader:
                have = bag_io.topics(reader)
                if topics:
                    bag_io.require_topics(reader, topics)
                unknown = sorted(set(remap) - set(have))
                if unknown:
                    raise BagError(f"--remap {', '.join(unknown)}: no such topic in {bag}")
                pubs = {}
                for info in have.values():
                    if topics and info.topic not in topics:
                        continue
                    try:
                        cls = message_class(info.msgtype)
                    except (ImportError, AttributeError, ValueError):
                        if topics:
                            raise BagError(f"cannot play {info.topic}: {info.msgtype} is not installed here") from None
                        log(f"skipping {info.topic}: its type {info.msgtype} is not installed here")
                        continue
                    name = remap.get(info.topic, info.topic)
                    pubs[info.topic] = node.create_publisher(cls, name, playback_qos(info))
                if not pubs:
                    raise BagError(f"{bag}: nothing to play (no topic with an installed message type)")
                clock_pub = None
                if clock_hz is not None:
                    from rosgraph_msgs.msg import Clock

                    clock_pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=1))
                # Wait for subscribers: until every topic (and /clock) has one, or the number of
                # matched topics has been stable for a second (some topics may have no listener), or
                # the timeout. /clock counts: a late clock subscriber would miss the bag's start time.
                waited = [*pubs.values(), *([clock_pub] if clock_pub is not None else [])]
                deadline = time.monotonic() + wait_subscribers_s
                matched, stable_since = -1, time.monotonic()
                while time.monotonic() < deadline and not stop.requested:
                    n = sum(1 for p in waited if p.get_subscription_count())
                    if n == len(waited):
                        break
                    if n != matched:
                        matched, stable_since = n, time.monotonic()
                    elif n > 0 and time.monotonic() - stable_since > 1.0:
                        break
                    rclpy.spin_once(node, timeout_sec=0.05)
                shown = ", ".join(f"{t} as {remap[t]}" if t in remap else t for t in sorted(pubs))
                log(f"playing {bag} at {rate}x{' (loop)' if loop else ''}: {shown}")

                def publish_clock(bag_ns: int) -> None:
                    if clock_pub is not None:
                        msg = Clock()
                        msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 10**9)
                        clock_pub.publish(msg)

                period = 1.0 / clock_hz if clock_hz else math.inf
                while not stop.requested:
                    first = True
                    t0_bag = t0_wall = 0.0
                    next_clock = time.monotonic()
                    for msg in reader.raw_messages(pubs):
                        if first:
                            t0_bag, t0_wall, first = msg.time_ns, time.monotonic(), False
                        due = t0_wall + (msg.time_ns - t0_bag) / 1e9 / rate
                        while (now := time.monotonic()) < due and not stop.requested:
                            if now >= next_clock:
                                publish_clock(int(t0_bag + (now - t0_wall) * rate * 1e9))
                                next_clock = now + period
                            time.sleep(max(0.0, min(due - now, next_clock - now, 0.01)))
                        if stop.requested:
                            break
                        publish_clock(msg.time_ns)
                        pubs[msg.topic].publish(bytes(msg.data))
                        sent += 1
                    if not loop or first:
                        break
                if stop.requested:
                    log(f"stopped by {stop.name}")
                time.sleep(0.5)  # let the last messages leave
        finally:
            node.destroy_node()
            rclpy.try_shutdown()
    return sent
