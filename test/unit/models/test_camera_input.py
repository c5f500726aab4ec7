"""Camera passthrough, model-input half: the receiver rebuilds the robot's exact model input from the file bytes;
a decode that differs is refused naming the decoder mismatch; the executor's codec choice uses the tag."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image

from intradp_ros.core.codec import DENSE_CODECS, TileValidator, choose_codec, decode_tile, encode_tile
from intradp_ros.core.codecs.camera import camera_payload
from intradp_ros.core.tile import CODEC_CAMERA, CODEC_RAW, Tile, TileError
from intradp_ros.models.camera_input import camera_frame_of, camera_model_input, drop_camera_frame
from intradp_ros.models.letterbox import letterbox


def _jpeg(h: int = 120, w: int = 160) -> bytes:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=85)
    return buf.getvalue()


@dataclasses.dataclass
class _Node:
    is_input: bool = True
    binary: bool = False


def _tile(x: torch.Tensor, codec: int = CODEC_CAMERA) -> Tile:
    return Tile(5, 1, 0, 2, 0, x.shape[2], x.numpy(), codec, encoded=camera_payload(x))


def test_model_input_is_the_letterboxed_decode_and_carries_the_file() -> None:
    data = _jpeg()
    x, info, rgb = camera_model_input(data, (128, 128))
    ref, ref_info = letterbox(np.array(Image.open(io.BytesIO(data)).convert("RGB")), (128, 128))
    assert torch.equal(x, ref) and info == ref_info and rgb.shape == (120, 160, 3)
    frame = camera_frame_of(x)
    assert frame is not None and frame.encoded == data and frame.tensor_shape == (1, 3, 128, 128)


def test_receiver_rebuilds_the_exact_model_input_from_the_jpeg() -> None:
    x, _info, _rgb = camera_model_input(_jpeg(), (128, 160))
    wire = encode_tile(_tile(x))
    assert len(wire.data) < x.numel() // 2
    got = decode_tile(wire, TileValidator(None, {0: (1, 3, 128, 160)}, 1 << 20))
    assert got.codec == CODEC_CAMERA and got.codec in DENSE_CODECS
    assert got.data.tobytes() == x.numpy().tobytes() and got.data.shape == (1, 3, 128, 160)


def test_a_decode_that_differs_from_the_robot_is_refused_naming_the_mismatch() -> None:
    x, _info, _rgb = camera_model_input(_jpeg(), (128, 160))
    wire = encode_tile(_tile(x))
    payload = bytearray(wire.data)
    payload[4] ^= 0xFF  # the robot's hash no longer matches what this side decodes
    with pytest.raises(TileError, match="decoder mismatch") as err:
        decode_tile(dataclasses.replace(wire, data=bytes(payload)))
    assert err.value.field == "data"


def test_camera_tiles_are_validated_strictly() -> None:
    x, _info, _rgb = camera_model_input(_jpeg(), (128, 160))
    wire = encode_tile(_tile(x))
    with pytest.raises(TileError) as err:  # another model input size than the tile says: refused
        decode_tile(dataclasses.replace(wire, shape=(1, 3, 64, 160), row_stop=64), TileValidator(None, None, 1 << 20))
    assert err.value.field == "data"  # the hash covers the shape
    with pytest.raises(TileError) as err:
        decode_tile(dataclasses.replace(wire, shape=(1, 3, 128)))
    assert err.value.field == "shape"
    with pytest.raises(TileError) as err:
        decode_tile(dataclasses.replace(wire, dtype="float32"))
    assert err.value.field == "dtype"
    with pytest.raises(TileError, match="limit"):  # the decoded model input counts against the limit
        decode_tile(wire, TileValidator(None, None, 1000))
    with pytest.raises(TileError):
        encode_tile(Tile(5, 1, 0, 2, 0, 128, x.numpy(), CODEC_CAMERA))  # no file bytes to send


def test_choose_codec_passes_through_only_a_tagged_whole_input() -> None:
    x, _info, _rgb = camera_model_input(_jpeg(), (128, 160))
    enabled = {CODEC_RAW, CODEC_CAMERA}
    assert choose_codec(_Node(), x.numpy(), enabled, source=x) == CODEC_CAMERA
    assert choose_codec(_Node(), x.numpy(), {CODEC_RAW}, source=x) == CODEC_RAW  # not enabled
    assert choose_codec(_Node(is_input=False), x.numpy(), enabled, source=x) == CODEC_RAW
    part = x[:, :, :64]
    assert choose_codec(_Node(), part.numpy(), enabled, source=x) == CODEC_RAW  # a band is not the file
    assert choose_codec(_Node(), x.numpy(), enabled, source=drop_camera_frame(x)) == CODEC_RAW


def test_the_letterbox_does_not_depend_on_the_thread_count() -> None:
    """Robot (one torch thread under its quota) and server (all cores) must letterbox a camera frame to the same
    pixels, or the passthrough probe fails as a decoder mismatch: torch's interpolate did differ (1 vs 2 threads,
    1280x960 -> 832x624); the numpy resize does not, and stays within one grey level of torch's bilinear."""
    import torch
    import torch.nn.functional as F

    from intradp_ros.models.letterbox import letterbox, resize_bilinear

    rgb = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)  # torch differed at this size
    threads = torch.get_num_threads()
    try:
        outs = []
        for t in (1, 2):
            torch.set_num_threads(t)
            outs.append(letterbox(rgb, (160, 208))[0])
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outs[0], outs[1])
    ref = F.interpolate(torch.from_numpy(rgb).permute(2, 0, 1)[None].float(), size=(156, 208), mode="bilinear")
    ref = ref.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.abs(resize_bilinear(rgb, 156, 208).astype(int) - ref.astype(int)).max() <= 1


def test_a_camera_robot_profiles_its_codecs_on_the_photograph_letterboxed_like_its_frames() -> None:
    """A random example never compresses: profiled on it, every image codec is priced at ratio 1.0 and never used
    (the torchvision client's VGG19 '+codecs' system runs sent raw pixels). Where no photograph fits, the example."""
    import torch

    from intradp_ros.models.camera_input import sample_profile_input

    example = torch.zeros((1, 3, 224, 224), dtype=torch.uint8)
    x, name = sample_profile_input(example)
    assert name == "camera_sample" and x.shape == example.shape and x.dtype == torch.uint8
    assert float(x.float().std()) > 10, "a photograph, not a flat or random example"
    floats = torch.zeros((1, 3, 224, 224))
    same, name = sample_profile_input(floats)
    assert same is floats and name == "", "a float input is not a camera frame"
