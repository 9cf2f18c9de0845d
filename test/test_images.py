"""Image <-> numpy conversion: exact round trips and clear errors."""

import sys

import numpy as np
import pytest

from depth_annotation.common import (
    ENCODINGS,
    ImageConversionError,
    ImageFields,
    array_to_fields,
    depth_to_metres,
    depth_to_millimetres,
    image_to_array,
    image_to_rgb,
)

RNG = np.random.default_rng(7)


def sample(encoding: str, h: int = 5, w: int = 7) -> np.ndarray:
    dtype, ch = ENCODINGS[encoding]
    shape = (h, w) if ch == 1 else (h, w, ch)
    if dtype == np.float32:
        return RNG.normal(1.0, 0.5, shape).astype(np.float32)
    return RNG.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1", "rgb8", "bgr8", "mono8"])
def test_round_trip_is_exact(encoding):
    arr = sample(encoding)
    fields = array_to_fields(arr, encoding)
    assert fields.step == arr.shape[1] * arr.dtype.itemsize * (arr.shape[2] if arr.ndim == 3 else 1)
    back = image_to_array(fields)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert np.array_equal(back, arr)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_round_trip_through_real_sensor_msgs_image(encoding):
    from sensor_msgs.msg import Image

    from depth_annotation.nodes.messages import image_array, image_msg, make_header

    arr = sample(encoding, 48, 64)
    msg = image_msg(arr, encoding, make_header(123, "cam"))
    assert isinstance(msg, Image)
    assert np.array_equal(image_array(msg), arr)


@pytest.mark.parametrize("copy", [True, False])
def test_other_endianness_is_swapped(copy):
    arr = sample("16UC1")
    other = sys.byteorder != "big"  # the non-host order
    data = arr.astype(arr.dtype.newbyteorder(">" if other else "<")).tobytes()
    msg = ImageFields(arr.shape[0], arr.shape[1], "16UC1", int(other), arr.shape[1] * 2, data)
    assert np.array_equal(image_to_array(msg, copy=copy), arr)


@pytest.mark.parametrize("encoding", ["rgb8", "16UC1"])
@pytest.mark.parametrize("copy", [True, False])
def test_padded_rows_are_cropped(encoding, copy):
    arr = sample(encoding)
    h, w = arr.shape[:2]
    row = arr[0].nbytes
    step = row + 6
    padded = np.zeros((h, step), np.uint8)
    padded[:, :row] = arr.view(np.uint8).reshape(h, row)
    msg = ImageFields(h, w, encoding, 0, step, padded.tobytes())
    out = image_to_array(msg, copy=copy)
    assert np.array_equal(out, arr) and out.flags.c_contiguous


def test_copy_false_is_a_view_of_the_message_buffer():
    arr = sample("16UC1")
    arr[0, 0] = 1234
    buf = bytearray(array_to_fields(arr, "16UC1").data)
    msg = ImageFields(arr.shape[0], arr.shape[1], "16UC1", int(sys.byteorder == "big"), arr.shape[1] * 2, buf)
    view, copied = image_to_array(msg, copy=False), image_to_array(msg)
    buf[0:2] = b"\x00\x00"
    assert view[0, 0] == 0 and copied[0, 0] == arr[0, 0]


def test_unknown_encoding_lists_supported():
    msg = ImageFields(2, 2, "yuv422", 0, 4, bytes(8))
    with pytest.raises(ImageConversionError, match=r"unsupported image encoding 'yuv422'.*16UC1"):
        image_to_array(msg)


def test_short_step_is_rejected():
    msg = ImageFields(4, 4, "16UC1", 0, 6, bytes(24))
    with pytest.raises(ImageConversionError, match="step 6 is shorter than a row"):
        image_to_array(msg)


def test_data_size_mismatch_is_rejected():
    msg = ImageFields(4, 4, "mono8", 0, 4, bytes(15))
    with pytest.raises(ImageConversionError, match="data holds 15 B, expected"):
        image_to_array(msg)


def test_empty_image_is_rejected():
    with pytest.raises(ImageConversionError, match="empty"):
        image_to_array(ImageFields(0, 4, "mono8", 0, 4, b""))
    with pytest.raises(ImageConversionError, match="empty"):
        array_to_fields(np.zeros((0, 4), np.uint8), "mono8")


def test_dtype_and_channels_checked_when_packing():
    with pytest.raises(ImageConversionError, match="needs dtype uint16"):
        array_to_fields(np.zeros((2, 2), np.float32), "16UC1")
    with pytest.raises(ImageConversionError, match="needs 3 channel"):
        array_to_fields(np.zeros((2, 2), np.uint8), "rgb8")


def test_depth_unit_conversions():
    m = np.array([[0.5, np.nan], [np.inf, -1.0], [70.0, 0.0004]], np.float32)
    mm = depth_to_millimetres(m, "32FC1")
    assert mm.dtype == np.uint16
    assert mm.tolist() == [[500, 0], [0, 0], [65535, 0]]
    back = depth_to_metres(np.array([[0, 1500]], np.uint16), "16UC1")
    assert np.isnan(back[0, 0]) and back[0, 1] == pytest.approx(1.5)
    with pytest.raises(ImageConversionError, match="depth must be 16UC1"):
        depth_to_millimetres(np.zeros((2, 2), np.uint8), "mono8")


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_image_to_rgb_orders_channels(encoding):
    rgb = sample("rgb8")
    stored = rgb if encoding == "rgb8" else rgb[..., ::-1]
    assert np.array_equal(image_to_rgb(array_to_fields(stored, encoding)), rgb)


def test_image_to_rgb_refuses_other_encodings():
    with pytest.raises(ImageConversionError, match="colour images must be rgb8 or bgr8, got 'mono8'"):
        image_to_rgb(array_to_fields(sample("mono8"), "mono8"))


# --- every message and value, as the mutation run asks (`./dev.sh mutate images`) --------------------------


def test_error_messages_name_the_numbers():
    with pytest.raises(ImageConversionError) as err:
        image_to_array(ImageFields(2, 2, "yuv422", 0, 4, bytes(8)))
    assert str(err.value) == (
        "unsupported image encoding 'yuv422'; supported: 16UC1, 32FC1, 8UC1, bgr8, mono16, mono8, rgb8"
    )
    with pytest.raises(ImageConversionError) as err:
        image_to_array(ImageFields(4, 4, "rgb8", 0, 10, bytes(40)))
    assert str(err.value) == "rgb8 image 4x4: step 10 is shorter than a row (4 px x 3 B = 12 B)"
    with pytest.raises(ImageConversionError) as err:
        image_to_array(ImageFields(4, 3, "16UC1", 0, 9, bytes(36)))
    assert str(err.value) == "16UC1 image: step 9 is not a multiple of the 2-byte element"
    with pytest.raises(ImageConversionError) as err:
        image_to_array(ImageFields(4, 3, "mono8", 0, 5, bytes(19)))
    assert str(err.value) == "mono8 image 3x4: data holds 19 B, expected step x height = 5 x 4 = 20 B"
    for convert in (depth_to_millimetres, depth_to_metres):
        with pytest.raises(ImageConversionError) as err:
            convert(np.zeros((2, 2), np.uint8), "mono8")
        assert str(err.value) == "depth must be 16UC1 (mm) or 32FC1 (m), got 'mono8'"


def test_data_as_a_plain_list_of_ints():
    msg = ImageFields(2, 3, "mono8", 0, 3, [1, 2, 3, 250, 251, 252])
    out = image_to_array(msg)
    assert out.dtype == np.uint8 and out.tolist() == [[1, 2, 3], [250, 251, 252]]


def test_eight_bit_images_ignore_the_byte_order_and_copy_false_stays_a_view():
    buf = bytearray([10, 20, 30, 40])
    for flag in (0, 1):
        msg = ImageFields(2, 2, "mono8", flag, 2, buf)
        view = image_to_array(msg, copy=False)
        assert view.tolist() == [[10, 20], [30, 40]]
        buf[0] = 99 + flag
        assert view[0, 0] == 99 + flag  # a view of the buffer whatever is_bigendian says
        buf[0] = 10


def test_image_to_rgb_copies_unless_asked_not_to():
    rgb = sample("rgb8", 2, 3)
    buf = bytearray(array_to_fields(rgb, "rgb8").data)
    msg = ImageFields(2, 3, "rgb8", 0, 9, buf)
    copied, view = image_to_rgb(msg), image_to_rgb(msg, copy=False)
    buf[0] = (int(rgb[0, 0, 0]) + 1) % 256
    assert copied[0, 0, 0] == rgb[0, 0, 0] and view[0, 0, 0] == buf[0]
    assert copied.flags.writeable


def test_packing_checks_the_channel_count_of_single_channel_encodings():
    assert array_to_fields(np.zeros((2, 3, 1), np.uint8), "mono8").step == 3
    with pytest.raises(ImageConversionError, match=r"^encoding mono8 needs 1 channel\(s\), got shape \(2, 3, 3\)$"):
        array_to_fields(np.zeros((2, 3, 3), np.uint8), "mono8")
    fields = array_to_fields(np.zeros((2, 3), np.uint16), "16UC1")
    assert type(fields.is_bigendian) is int and fields.is_bigendian == int(sys.byteorder == "big")


@pytest.mark.parametrize("encoding", ["16UC1", "mono16"])
def test_millimetre_depth_passes_through_as_uint16(encoding):
    depth = np.array([[0, 1, 65535]], np.int32)
    mm = depth_to_millimetres(depth, encoding)
    assert mm.dtype == np.uint16 and mm.tolist() == [[0, 1, 65535]]
    m = depth_to_metres(depth, encoding)
    assert m.dtype == np.float32
    assert np.isnan(m[0, 0]) and m[0, 1] == np.float32(0.001) and m[0, 2] == pytest.approx(65.535)


def test_metres_to_millimetres_rounds_in_double_precision():
    # float32 0.1005 is 0.10050000250339508 m = 100.50000250 mm: 101 (in float32 arithmetic 100.5 rounds to 100)
    m = np.array([[np.float32(0.1005), 2.0, 0.0009, 0.0004]], np.float32)
    assert round(float(np.float32(0.1005)) * 1000) == 101
    assert depth_to_millimetres(m, "32FC1").tolist() == [[101, 2000, 1, 0]]
    assert depth_to_millimetres(np.array([[1.0, 3.0]], np.float32), "32FC1", max_mm=2500).tolist() == [[1000, 2500]]


def test_float_metres_keep_positive_finite_values_only_and_never_touch_the_input():
    for dtype in (np.float32, np.float64):
        depth = np.array([[1.5, 0.0, -1.0], [np.nan, np.inf, 0.25]], dtype)
        before = depth.copy()
        m = depth_to_metres(depth, "32FC1")
        assert m.dtype == np.float32
        assert np.array_equal(m, np.array([[1.5, np.nan, np.nan], [np.nan, np.nan, 0.25]], np.float32), equal_nan=True)
        assert np.array_equal(depth, before, equal_nan=True)
