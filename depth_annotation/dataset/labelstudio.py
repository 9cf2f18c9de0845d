"""Label Studio project files: a labelling config showing RGB and colorized depth side by side, and tasks.

Segmentation is drawn on the colorized depth (brush) or the RGB (polygons) with
the taxonomy's labels (`void` excluded: annotators never label missing depth);
mug keypoints are clicked on the depth view so each click has a depth value to
back-project with the intrinsics. Tasks reference frames by episode and stamp,
not by file name alone (the guide: multi-camera safe).
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

from depth_annotation.common import Taxonomy


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def label_config(taxonomy: Taxonomy, *, depth_range_m: tuple[float, float]) -> str:
    labels = [lab for lab in taxonomy.labels if lab.name != "void"]
    brush = "\n".join(
        f"    <Label value={quoteattr(lab.name)} background={quoteattr(_hex(lab.color))}/>" for lab in labels
    )
    keypoints = [k for names in taxonomy.keypoints.values() for k in names]
    palette = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c"]
    kp = "\n".join(
        f"    <Label value={quoteattr(k)} background={quoteattr(palette[i % len(palette)])}/>"
        for i, k in enumerate(keypoints)
    )
    lo, hi = depth_range_m
    return f"""<View>
  <Header value="Frame $episode @ $stamp_ns (QC: $qc_status)"/>
  <View style="display: flex; gap: 8px;">
    <View style="flex: 50%;">
      <Header value="RGB"/>
      <Image name="rgb" value="$image" zoom="true" zoomControl="true"/>
    </View>
    <View style="flex: 50%;">
      <Header value="Depth (TURBO, {lo:.2f}-{hi:.2f} m, black = no depth)"/>
      <Image name="depth" value="$depth" zoom="true" zoomControl="true"/>
    </View>
  </View>
  <BrushLabels name="segmentation" toName="depth">
{brush}
  </BrushLabels>
  <PolygonLabels name="outlines" toName="rgb" strokeWidth="2" pointSize="small">
{brush}
  </PolygonLabels>
  <KeyPointLabels name="keypoints" toName="depth" smart="false">
{kp}
  </KeyPointLabels>
</View>
"""


def task(
    *,
    image_url: str,
    depth_url: str,
    depth16_url: str,
    episode: str,
    stamp_ns: int,
    qc_status: str,
    qc_flagged: bool,
    intrinsics: list[float],
    scene_id: str,
    taxonomy_version: str,
) -> dict[str, Any]:
    return {
        "data": {
            "image": image_url,
            "depth": depth_url,
            "depth16": depth16_url,
            "episode": episode,
            "stamp_ns": str(stamp_ns),
            "qc_status": qc_status,
            "scene_id": scene_id,
            "taxonomy_version": taxonomy_version,  # the importer refuses results made with another taxonomy
        },
        "meta": {"camera_intrinsics_fx_fy_cx_cy": intrinsics, "qc_flagged": qc_flagged, "depth_scale": 0.001},
    }
