"""Camera passthrough on the ROS side (no master): CompressedImage conversion, the handshake's decoder identity and
camera probe, and the client's gate (pixels until the server decoded a probe identically; a mismatch warns once
and sends pixels from then on)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sensor_msgs.msg import CompressedImage

from intradp_ros.core.codecs.camera import DecoderIdentity, local_decoder
from intradp_ros.models.camera_input import camera_frame_of, camera_model_input
from intradp_ros.ros import kapao_client
from intradp_ros.ros.handshake import camera_fields, camera_probe_request, full_request, heartbeat_request
from intradp_ros.ros.sensor_conversion import (
    SensorConversionError,
    compressed_image_bytes,
    compressed_to_kapao_input,
    compressed_topic,
    rgb_to_compressed,
)

SHAPE = (1, 3, 64, 96)


def _rgb(h: int = 60, w: int = 80) -> np.ndarray:
    return np.random.default_rng(2).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_compressed_topic_follows_image_transport() -> None:
    assert compressed_topic("/camera/image_raw") == "/camera/image_raw/compressed"
    assert compressed_topic("/camera/image_raw/compressed") == "/camera/image_raw/compressed"


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_image_to_kapao_input(fmt: str) -> None:
    msg = rgb_to_compressed(_rgb(), fmt=fmt)
    x, info, rgb = compressed_to_kapao_input(msg, SHAPE[-2:], 1 << 20)
    assert tuple(x.shape) == SHAPE and rgb.shape == (60, 80, 3) and info.orig_hw == (60, 80)
    assert camera_frame_of(x).encoded == bytes(msg.data)
    if fmt == "png":
        assert np.array_equal(rgb, _rgb())  # lossless


def test_compressed_image_validation() -> None:
    png = rgb_to_compressed(_rgb(), fmt="png")
    for msg, why in (
        (CompressedImage(format="jpeg", data=b""), "no data"),
        (CompressedImage(format="jpeg", data=b"BM" + bytes(50)), "neither JPEG nor PNG"),
        (CompressedImage(format="jpeg", data=png.data), "holds PNG"),
    ):
        with pytest.raises(SensorConversionError, match=why):
            compressed_image_bytes(msg)
    ros_style = CompressedImage(format="rgb8; jpeg compressed bgr8", data=rgb_to_compressed(_rgb()).data)
    assert compressed_image_bytes(ros_style)[:2] == b"\xff\xd8"
    with pytest.raises(SensorConversionError, match="max_pixels"):
        compressed_to_kapao_input(rgb_to_compressed(_rgb()), SHAPE[-2:], 100)


def test_requests_carry_the_decoder_identity() -> None:
    for req in (heartbeat_request("r", "m", "w", "g"), full_request("r", "m", "w", "g", "{}")):
        assert DecoderIdentity.from_json(req.decoder_json) == local_decoder()
        assert not req.camera_probe


def _probe(corrupt_hash: bool = False) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_rgb()).save(buf, "JPEG", quality=90)
    x, _info, _frame = camera_model_input(buf.getvalue(), SHAPE[-2:])
    payload = bytearray(camera_frame_of(x).payload())
    if corrupt_hash:
        payload[5] ^= 1
    return bytes(payload)


def test_server_answers_a_probe_with_its_decoder_and_the_verdict() -> None:
    ok = camera_fields(camera_probe_request("r", "m", "w", "g", _probe()), SHAPE)
    assert ok["camera_probe_error"] == "" and DecoderIdentity.from_json(ok["server_decoder_json"]) == local_decoder()
    bad = camera_fields(camera_probe_request("r", "m", "w", "g", _probe(corrupt_hash=True)), SHAPE)
    assert "decoder mismatch" in bad["camera_probe_error"]
    other = camera_probe_request("r", "m", "w", "g", _probe())
    other.decoder_json = DecoderIdentity("OtherJPEG", "9", "fast").to_json()
    assert "decoder differs" in camera_fields(other, SHAPE)["camera_probe_error"]
    junk = camera_probe_request("r", "m", "w", "g", b"IDPC" + bytes(16) + b"junk")
    assert camera_fields(junk, SHAPE)["camera_probe_error"]
    assert camera_fields(heartbeat_request("r", "m", "w", "g"), SHAPE)["camera_probe_error"] == ""


def _frame_tensor():  # type: ignore[no-untyped-def]
    x, _info, _frame = camera_model_input(_probe()[20:], SHAPE[-2:])
    return x


def test_gate_sends_pixels_until_the_probe_says_identical(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    answers = [(None, "no session"), (True, "")]
    calls = []

    def fake_probe(robot, ids, payload, timeout):  # type: ignore[no-untyped-def]
        calls.append(payload)
        return answers.pop(0)

    monkeypatch.setattr(kapao_client, "probe_camera", fake_probe)
    gate = kapao_client.CameraPassthrough(enabled=True, probe_period=0.0)
    assert camera_frame_of(gate.gate(_frame_tensor(), "r", ("r", "m", "w", "g"), 1.0)) is None  # unanswered
    assert gate.state == "unknown"
    assert camera_frame_of(gate.gate(_frame_tensor(), "r", ("r", "m", "w", "g"), 1.0)) is not None
    assert gate.state == "on" and len(calls) == 2 and calls[0][:4] == b"IDPC"
    assert camera_frame_of(gate.gate(_frame_tensor(), "r", ("r", "m", "w", "g"), 1.0)) is not None
    assert len(calls) == 2  # no more probes once verified


def test_gate_mismatch_warns_once_and_sends_pixels(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls, warnings = [], []
    monkeypatch.setattr(kapao_client, "probe_camera", lambda *a: calls.append(a) or (False, "decoder mismatch"))
    monkeypatch.setattr(kapao_client.rospy, "logwarn", lambda *a: warnings.append(a))
    gate = kapao_client.CameraPassthrough(enabled=True, probe_period=0.0)
    for _ in range(3):
        assert camera_frame_of(gate.gate(_frame_tensor(), "r", ("r", "m", "w", "g"), 1.0)) is None
    assert gate.state == "off" and len(calls) == 1 and len(warnings) == 1


def test_gate_probes_at_most_once_per_period(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = []
    monkeypatch.setattr(kapao_client, "probe_camera", lambda *a: calls.append(a) or (None, "no server"))
    gate = kapao_client.CameraPassthrough(enabled=True, probe_period=3600.0)
    for _ in range(3):
        gate.gate(_frame_tensor(), "r", ("r", "m", "w", "g"), 1.0)
    assert len(calls) == 1
    off = kapao_client.CameraPassthrough(enabled=False, probe_period=0.0)
    assert camera_frame_of(off.gate(_frame_tensor(), "r", ("r", "m", "w", "g"), 1.0)) is None


def _adapter(**extra):  # type: ignore[no-untyped-def]
    settings = {k: v[1] for k, v in kapao_client.SPEC.items()}
    settings.update(input_topic="/camera/image_raw", **extra)
    adapter = kapao_client.KapaoAdapter()
    adapter.configure(settings)
    adapter.input_hw, adapter.robot, adapter.ids, adapter.probe_timeout = SHAPE[-2:], "r", ("r", "m", "w", "g"), 1.0
    return adapter, settings


def test_compressed_transport_subscribes_the_compressed_topic() -> None:
    adapter, settings = _adapter(image_transport="compressed")
    assert adapter.input_type is CompressedImage and settings["input_topic"] == "/camera/image_raw/compressed"
    with pytest.raises(ValueError):
        _adapter(image_transport="theora")


def test_jpeg_reencode_is_opt_in_lossy_and_passes_the_jpeg_through(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from intradp_ros.ros.sensor_conversion import rgb_to_image

    monkeypatch.setattr(kapao_client, "probe_camera", lambda *a: (True, ""))
    exact, _ = _adapter()
    x0, _ctx = exact.convert(rgb_to_image(_rgb()))
    assert camera_frame_of(x0) is None  # default: pixels, exact
    lossy, _ = _adapter(jpeg_reencode_quality=80)
    x, (info, decoded) = lossy.convert(rgb_to_image(_rgb()))
    assert camera_frame_of(x) is not None and camera_frame_of(x).encoded[:2] == b"\xff\xd8"
    assert not np.array_equal(decoded, _rgb()) and tuple(x.shape) == SHAPE  # lossy: other pixels
    with pytest.raises(ValueError):
        _adapter(jpeg_reencode_quality=101)
    with pytest.raises(ValueError):
        _adapter(jpeg_reencode_quality=90, image_transport="compressed")


def test_verified_passthrough_is_offered_as_a_codec_with_the_observed_ratio(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """No camera entry before the probe says identical (or when it said otherwise); then the observed mean of
    payload / pixel bytes, kept until it drifts by more than RATIO_DRIFT (so the book is not re-solved per frame)."""
    from intradp_ros.core.tile import CODEC_CAMERA

    answers = [(None, "no session"), (True, "")]
    monkeypatch.setattr(kapao_client, "probe_camera", lambda *a: answers.pop(0))
    gate = kapao_client.CameraPassthrough(enabled=True, probe_period=0.0)
    x = _frame_tensor()
    want = len(camera_frame_of(x).payload()) / x.numel()
    gate.gate(x, "r", ("r", "m", "w", "g"), 1.0)
    assert gate.codec_profile() is None, "not verified yet"
    gate.gate(_frame_tensor(), "r", ("r", "m", "w", "g"), 1.0)
    entry = gate.codec_profile()
    assert entry is not None and entry.codec == CODEC_CAMERA and entry.ratio == pytest.approx(want, rel=1e-3)
    assert entry.encode_s_per_mb == 0.0 and entry.samples == 2
    gate.gate(_frame_tensor(), "r", ("r", "m", "w", "g"), 1.0)
    assert gate.codec_profile() == entry, "another frame at the same ratio must not change the entry (re-handshake)"
    gate.mean_ratio = want * 1.1  # a small drift keeps the ratio sent
    assert gate.codec_profile().ratio == entry.ratio
    gate.mean_ratio = want * 2.0  # a large one moves it (one re-handshake)
    assert gate.codec_profile().ratio == pytest.approx(want * 2.0, rel=1e-3)
    monkeypatch.setattr(kapao_client, "probe_camera", lambda *a: (False, "decoder mismatch"))
    monkeypatch.setattr(kapao_client.rospy, "logwarn", lambda *a: None)
    off = kapao_client.CameraPassthrough(enabled=True, probe_period=0.0)
    off.gate(_frame_tensor(), "r", ("r", "m", "w", "g"), 1.0)
    assert off.state == "off" and off.codec_profile() is None


def test_the_kapao_client_profiles_its_codecs_on_a_real_photograph() -> None:
    import torch

    adapter, _settings = _adapter(image_transport="compressed")
    example = torch.zeros((1, 3, 64, 96), dtype=torch.uint8)
    x, name = adapter.profile_input(example)
    assert name == "camera_sample" and x.shape == example.shape and x.dtype == torch.uint8
    assert int(x.float().std()) > 10, "a photograph, not a flat or random example"
    assert adapter.codec_profiles() == []
