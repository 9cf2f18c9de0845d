"""From the camera to frames: RealSense SDK sources (device, recording, synthetic software_device),
the filter chain, align, the capture pipeline with its worker processes, hardware-clock stamps,
per-stream frame accounting and capture_metadata.json.
"""

from typing import TYPE_CHECKING

from depth_annotation.common import lazy_exports

if TYPE_CHECKING:
    from .errors import ControlError, FilterConfigError, ReplayError, SourceError, SourceUnavailable, WorkerFailed
    from .filters import FILTER_ORDER, FILTERS, FilterChain, FilterSettings, default_settings, updated_settings
    from .frame_accounting import StreamCounter
    from .hw_clock import HardwareClockMapper
    from .metadata import build_metadata, write_metadata
    from .pipeline import CaptureConfig, CapturedFrame, CapturePipeline, CaptureState
    from .replay import SoftwareReplay, StreamGeometry, VideoGeometry
    from .sdk_workers import SdkWorkers
    from .source_settings import ControlSettings, Profile, SyntheticFaults
    from .sources import (
        CONTROLS,
        DeviceInfo,
        DeviceSource,
        FrameSource,
        RecordingSource,
        SourceFactory,
        SyntheticSource,
        apply_device_controls,
        control_sensors,
        set_device_control,
    )
    from .synthetic_camera import SyntheticCamera

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
