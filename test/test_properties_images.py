"""Properties of sensor_msgs/Image <-> numpy (common/images.py), for every encoding, step and byte order.

The messages here are built by hand from the Image definition (rows of `step` bytes, elements in the
order `is_bigendian` says, any bytes after a row's pixels ignored), not by `array_to_fields`, so the
reader is checked against the format rather than against our own writer.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from depth_annotation.common import ENCODINGS, ImageConversionError, ImageFields, array_to_fields, image_to_array

SETTINGS = settings(max_examples=60, deadline=None)
# the layouts the ROS encodings name (sensor_msgs/image_encodings.hpp), written out independently of ENCODINGS
LAYOUT = {
    "16UC1": ("uint16", 1),
    "mono16": ("uint16", 1),
    "32FC1": ("float32", 1),
    "rgb8": ("uint8", 3),
    "bgr8": ("uint8", 3),
    "mono8": ("uint8", 1),
    "8UC1": ("uint8", 1),
}


def test_every_encoding_has_its_ros_layout():
    assert {e: (np.dtype(t), c) for e, (t, c) in LAYOUT.items()} == dict(ENCODINGS)


@st.composite
def images(draw):
    """(encoding, pixels): any size up to 9x9, any values (NaN, inf and -0.0 included for 32FC1)."""
    encoding = draw(st.sampled_from(sorted(LAYOUT)))
    dtype, channels = LAYOUT[encoding]
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    shape = (h, w) if channels == 1 else (h, w, channels)
    return encoding, draw(arrays(np.dtype(dtype), shape))


def same_pixels(a, b):
    """Equal element for element, bit for bit (so NaN payloads and -0.0 count)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@SETTINGS
@given(images(), st.data())
def test_a_message_of_any_step_and_byte_order_reads_back_its_pixels(image, data):
    encoding, pixels = image
    h, w = pixels.shape[:2]
    itemsize = pixels.dtype.itemsize
    big = data.draw(st.booleans(), label="is_bigendian")
    pad = itemsize * data.draw(st.integers(0, 5), label="padding elements per row")
    row = pixels.astype(pixels.dtype.newbyteorder(">" if big else "<")).reshape(h, -1).view(np.uint8)
    garbage = data.draw(arrays(np.uint8, (h, pad)), label="padding bytes")
    msg = ImageFields(h, w, encoding, int(big), row.shape[1] + pad, np.hstack([row, garbage]).tobytes())
    for copy in (True, False):
        out = image_to_array(msg, copy=copy)
        assert same_pixels(out, pixels)


@SETTINGS
@given(images())
def test_array_to_fields_round_trips_with_a_tight_step(image):
    encoding, pixels = image
    fields = array_to_fields(pixels, encoding)
    h, w = pixels.shape[:2]
    channels = LAYOUT[encoding][1]
    assert (fields.height, fields.width, fields.encoding) == (h, w, encoding)
    assert fields.step == w * channels * pixels.dtype.itemsize and len(fields.data) == fields.step * h
    assert same_pixels(image_to_array(fields), pixels)
    if channels == 1:  # an (H, W, 1) array packs the same as (H, W)
        assert array_to_fields(pixels[..., None], encoding).data == fields.data
    # a non-contiguous view (every other column) packs like its contiguous copy
    view = pixels[:, ::2]
    assert same_pixels(image_to_array(array_to_fields(view, encoding)), np.ascontiguousarray(view))


@SETTINGS
@given(images(), st.data())
def test_data_of_the_wrong_length_or_a_short_step_is_refused(image, data):
    encoding, pixels = image
    fields = array_to_fields(pixels, encoding)
    cut = data.draw(st.integers(1, len(fields.data)), label="bytes missing")
    extra = data.draw(st.integers(1, 7), label="bytes too many")
    for wrong in (fields.data[:-cut], fields.data + bytes(extra)):
        with pytest.raises(ImageConversionError, match="data holds"):
            image_to_array(ImageFields(fields.height, fields.width, encoding, fields.is_bigendian, fields.step, wrong))
    short = data.draw(st.integers(0, fields.step - 1), label="short step")
    with pytest.raises(ImageConversionError, match="step"):
        image_to_array(ImageFields(fields.height, fields.width, encoding, fields.is_bigendian, short, fields.data))
