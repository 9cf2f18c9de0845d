"""The RealSense post-processing chain as data.

Like realsense-ros, the chain is an ordered list of named blocks, each with
`enable` and its SDK options; unlike it, the order is fixed to the one
librealsense recommends and cannot be got wrong:

    decimation -> depth-to-disparity -> spatial -> temporal -> disparity-to-depth -> hole_filling

(spatial and temporal smoothing work best in the disparity domain, where stereo
error is uniform). Option defaults are librealsense's own for each block (temporal
smooth_alpha=0.4, smooth_delta=20, persistency 3; spatial magnitude=2,
smooth_alpha=0.5, smooth_delta=20), the values Intel's "Depth Post-Processing for
Intel RealSense D400 Depth Cameras" white paper starts from: they reduce noise
without smoothing away edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyrealsense2 as rs

from .errors import FilterConfigError

FILTER_ORDER = ("decimation", "spatial", "temporal", "hole_filling")


@dataclass(frozen=True)
class OptionSpec:
    name: str  # parameter name, realsense-ros style (e.g. filter_smooth_alpha)
    option: str  # rs.option attribute
    default: float
    low: float
    high: float
    integer: bool
    description: str


@dataclass(frozen=True)
class FilterSpec:
    name: str
    enabled: bool
    options: tuple[OptionSpec, ...]
    description: str


FILTERS: dict[str, FilterSpec] = {
    "decimation": FilterSpec(
        "decimation",
        False,
        (OptionSpec("filter_magnitude", "filter_magnitude", 2, 2, 8, True, "downsampling factor"),),
        "reduce depth resolution by an integer factor (median of each block)",
    ),
    "spatial": FilterSpec(
        "spatial",
        True,
        (
            OptionSpec("filter_magnitude", "filter_magnitude", 2, 1, 5, True, "filter iterations"),
            OptionSpec(
                "filter_smooth_alpha",
                "filter_smooth_alpha",
                0.5,
                0.25,
                1.0,
                False,
                "alpha of the exponential moving average (1 = no filtering)",
            ),
            OptionSpec(
                "filter_smooth_delta",
                "filter_smooth_delta",
                20,
                1,
                50,
                True,
                "step (disparity units) treated as an edge",
            ),
            OptionSpec("holes_fill", "holes_fill", 0, 0, 5, True, "hole-filling radius mode (0 = off)"),
        ),
        "edge-preserving spatial smoothing",
    ),
    "temporal": FilterSpec(
        "temporal",
        True,
        (
            OptionSpec(
                "filter_smooth_alpha", "filter_smooth_alpha", 0.4, 0.0, 1.0, False, "weight of the current frame"
            ),
            OptionSpec(
                "filter_smooth_delta",
                "filter_smooth_delta",
                20,
                1,
                100,
                True,
                "step treated as a real change, not noise",
            ),
            OptionSpec(
                "holes_fill", "holes_fill", 3, 0, 8, True, "persistency mode: fill holes from previous frames (0 = off)"
            ),
        ),
        "temporal smoothing over the previous frames (static scenes)",
    ),
    "hole_filling": FilterSpec(
        "hole_filling",
        False,
        (OptionSpec("holes_fill", "holes_fill", 1, 0, 2, True, "0 fill from left, 1 farthest neighbour, 2 nearest"),),
        "fill remaining holes from neighbouring pixels",
    ),
}


@dataclass
class FilterSettings:
    """One block's configuration: whether it runs and its option values."""

    name: str
    enabled: bool
    options: dict[str, float] = field(default_factory=dict)

    def validate(self) -> None:
        spec = FILTERS.get(self.name)
        if spec is None:
            raise FilterConfigError(f"unknown filter {self.name!r}; known: {', '.join(FILTER_ORDER)}")
        known = {o.name: o for o in spec.options}
        for key, value in self.options.items():
            opt = known.get(key)
            if opt is None:
                raise FilterConfigError(f"{self.name}: unknown option {key!r}; known: {', '.join(known)}")
            if not opt.low <= value <= opt.high:
                raise FilterConfigError(f"{self.name}.{key}={value} is outside [{opt.low}, {opt.high}]")
            if opt.integer and float(value) != int(value):
                raise FilterConfigError(f"{self.name}.{key} must be an integer, got {value}")


def default_settings() -> list[FilterSettings]:
    """librealsense's default options for each block, in chain order (spatial and temporal on)."""
    return [
        FilterSettings(name, FILTERS[name].enabled, {o.name: o.default for o in FILTERS[name].options})
        for name in FILTER_ORDER
    ]


def updated_settings(
    settings: list[FilterSettings],
    name: str,
    *,
    enabled: bool | None = None,
    options: dict[str, float] | None = None,
) -> list[FilterSettings]:
    """`settings` with block `name` switched on/off and/or some of its options changed (a new list).

    Raises:
        FilterConfigError: unknown block or option, or a value outside the option's range;
            nothing is changed then.
    """
    if name not in FILTERS:
        raise FilterConfigError(f"unknown filter {name!r}; known: {', '.join(FILTER_ORDER)}")
    by_name = {s.name: s for s in settings}
    old = by_name.get(name, FilterSettings(name, False, {o.name: o.default for o in FILTERS[name].options}))
    new = FilterSettings(name, old.enabled if enabled is None else bool(enabled), {**old.options, **(options or {})})
    new.validate()
    by_name[name] = new
    return [by_name[n] for n in FILTER_ORDER if n in by_name]


def settings_to_dict(settings: list[FilterSettings]) -> dict[str, Any]:
    """For capture_metadata.json: {name: {enabled, options...}} in chain order."""
    return {s.name: {"enabled": s.enabled, **s.options} for s in settings}


class FilterChain:
    """The SDK blocks built from settings; `process` runs them in the recommended order.

    Stateful (the temporal filter remembers previous frames): one chain per
    stream of frames, fed in order from one thread. `reuse` hands over blocks of an
    earlier chain (by name), so a changed option keeps the temporal filter's history.
    """

    def __init__(
        self,
        settings: list[FilterSettings],
        *,
        disparity_domain: bool = True,
        reuse: dict[str, Any] | None = None,
    ) -> None:
        by_name = {s.name: s for s in settings}
        for s in settings:
            s.validate()
        self.disparity_domain = disparity_domain
        self.settings = [by_name.get(n, FilterSettings(n, False)) for n in FILTER_ORDER]
        self.blocks: list[tuple[str, Any]] = []
        enabled = {s.name for s in self.settings if s.enabled}
        smoothing = disparity_domain and bool(enabled & {"spatial", "temporal"})
        for s in self.settings:
            if s.name == "spatial" and smoothing:
                self.blocks.append(("depth_to_disparity", rs.disparity_transform(True)))
            if s.enabled:
                block = (reuse or {}).get(s.name)
                if block is None:
                    block = _make_block(s.name)
                for key, value in s.options.items():
                    block.set_option(getattr(rs.option, key), float(value))
                self.blocks.append((s.name, block))
            if s.name == "temporal" and smoothing:
                self.blocks.append(("disparity_to_depth", rs.disparity_transform(False)))

    def reconfigured(self, settings: list[FilterSettings]) -> FilterChain:
        """The chain for `settings`; where only options of blocks that stay on change, the same blocks.

        Kept blocks keep their state (the temporal filter's history). A block switched on or
        off, or a new decimation factor, changes what the blocks after it see (the frame
        size, the disparity domain): the SDK's stateful blocks are not made for that (they
        crash on a frame of another size), so the chain is built anew. Call it on the thread
        that runs `process`, between two frames: a frame never sees half of an update.
        """
        old = {s.name: s for s in self.settings}
        new = {s.name: s for s in settings}
        same_shape = all(old[n].enabled == new.get(n, FilterSettings(n, False)).enabled for n in FILTER_ORDER) and (
            not old["decimation"].enabled or old["decimation"].options == new["decimation"].options
        )
        kept = {name: block for name, block in self.blocks if name in FILTERS} if same_shape else {}
        return FilterChain(settings, disparity_domain=self.disparity_domain, reuse=kept)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.blocks]

    def process(self, frames: rs.frame) -> rs.frame:
        for _, block in self.blocks:
            frames = block.process(frames)
        return frames


def _make_block(name: str) -> Any:
    return {
        "decimation": rs.decimation_filter,
        "spatial": rs.spatial_filter,
        "temporal": rs.temporal_filter,
        "hole_filling": rs.hole_filling_filter,
    }[name]()
