"""Label Studio format worker: runs under the Label Studio SDK's own interpreter (`.venv-labelstudio`).

The SDK pins versions that clash with the main environment (numpy, opencv), so it
lives in its own virtual environment and this script is started there as a
subprocess (`labelstudio_codec.LabelStudioCodec`). It imports nothing of
depth_annotation: only the SDK, numpy and OpenCV of that environment.

What it does with the SDK:
- brush masks: `label_studio_sdk.converter.brush.decode_from_annotation` (the SDK's
  RLE decoder, alpha channel of the RGBA layer) and `brush.mask2rle` (its encoder);
  `label_studio_sdk.label_interface.control_tags.validate_rle` checks the byte list first.
- polygons: `label_studio_sdk.converter.exports.brush_to_coco.generate_contour_from_polygon`
  turns the percent coordinates into pixel coordinates as the SDK's COCO export does;
  OpenCV fills the polygon.

Protocol on stdin/stdout, one message each way per request: a 4-byte little-endian
length, a JSON header of that length, then `header["payload"]` raw bytes (decoded
masks go back bit-packed, `np.packbits`: 38 kB for 640x480 instead of 300 kB).
"""

from __future__ import annotations

import json
import struct
import sys
from typing import Any, BinaryIO

import numpy as np


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _send(stream: BinaryIO, header: dict[str, Any], payload: bytes = b"") -> None:
    header = dict(header, payload=len(payload))
    data = json.dumps(header).encode("utf-8")
    stream.write(struct.pack("<I", len(data)) + data + payload)
    stream.flush()


class _Codec:
    def __init__(self) -> None:
        import cv2
        from label_studio_sdk.converter import brush
        from label_studio_sdk.converter.exports.brush_to_coco import generate_contour_from_polygon
        from label_studio_sdk.label_interface.control_tags import validate_rle

        self.cv2, self.brush = cv2, brush
        self.polygon_to_pixels = generate_contour_from_polygon
        self.validate_rle = validate_rle

    def decode_rle(self, item: dict[str, Any]) -> np.ndarray:
        rle, width, height = item["rle"], int(item["width"]), int(item["height"])
        if not isinstance(rle, list) or not self.validate_rle(rle):
            raise ValueError("RLE is not a non-empty list of byte values 0-255")
        # The stream starts with its value count (32 bits, big-endian): check it before the SDK
        # allocates that many values, so a corrupt header cannot ask for gigabytes.
        count = int.from_bytes(bytes(rle[:4]), "big") if len(rle) >= 4 else -1
        if count != width * height * 4:
            raise ValueError(f"RLE holds {count} values, a {width}x{height} RGBA mask needs {width * height * 4}")
        result = {"type": "brushlabels", "rle": rle, "original_width": width, "original_height": height}
        try:
            layers = self.brush.decode_from_annotation("mask", [result])
        except (ValueError, IndexError) as exc:  # a truncated bit stream
            raise ValueError(f"RLE does not decode: {type(exc).__name__}: {exc}") from None
        (alpha,) = layers.values()
        return np.asarray(alpha > 127, np.uint8)

    def decode_polygon(self, item: dict[str, Any]) -> np.ndarray:
        width, height, points = int(item["width"]), int(item["height"]), item["points"]
        if not isinstance(points, list) or len(points) < 3:
            raise ValueError("a polygon needs at least 3 points")
        segmentation, _bbox, _area = self.polygon_to_pixels(points, width, height)
        xy = np.asarray(segmentation[0], np.int32).reshape(-1, 2)
        mask = np.zeros((height, width), np.uint8)
        self.cv2.fillPoly(mask, [xy], 1)
        return mask

    def decode(self, header: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        results, blobs, offset = [], [], 0
        for item in header["items"]:
            try:
                mask = self.decode_rle(item) if item["kind"] == "rle" else self.decode_polygon(item)
            except (ValueError, TypeError, KeyError) as exc:
                results.append({"ok": False, "error": str(exc)})
                continue
            data = np.packbits(mask).tobytes()  # 1 bit per pixel through the pipe
            results.append({"ok": True, "offset": offset, "size": len(data), "shape": list(mask.shape)})
            blobs.append(data)
            offset += len(data)
        return {"results": results}, b"".join(blobs)

    def encode(self, header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        out, offset = [], 0
        for height, width in header["shapes"]:
            mask = np.frombuffer(payload, np.uint8, height * width, offset).reshape(height, width)
            offset += height * width
            out.append([int(v) for v in self.brush.mask2rle(np.where(mask > 0, 255, 0).astype(np.uint8))])
        return {"results": out}, b""


def main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything the SDK prints must not corrupt the protocol
    try:
        codec = _Codec()
    except ImportError as exc:
        _send(stdout, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    from importlib.metadata import version

    _send(stdout, {"ok": True, "sdk_version": version("label-studio-sdk"), "python": sys.version.split()[0]})
    while True:
        try:
            (size,) = struct.unpack("<I", _read_exact(stdin, 4))
            header = json.loads(_read_exact(stdin, size))
            payload = _read_exact(stdin, int(header.get("payload", 0)))
        except EOFError:
            return 0
        op = header.get("op")
        if op == "decode":
            reply, data = codec.decode(header)
        elif op == "encode":
            reply, data = codec.encode(header, payload)
        else:
            reply, data = {"error": f"unknown op {op!r}"}, b""
        _send(stdout, reply, data)


if __name__ == "__main__":
    sys.exit(main())
