"""KAPAO (keypoints and poses as objects) s6 / m6 / l6, YOLOv5-P6 layout, written from MODELS.md.

The graph takes the raw letterboxed uint8 image [B, 3, H, W] (RGB, H and W multiples of 64) and starts with the
element-wise `.float() / 255`, so a robot can transmit raw image rows. Forward returns what upstream returns in
eval mode: `(detections (B, N, 57), [raw per-level maps (B, 3, H_l, W_l, 57)])`.

The Detect decode is element-wise along rows: the cell grids and anchor sizes are precomputed for the build-time
input size as non-persistent buffers with the full spatial extent [1, 3, H_l, W_l, k], so the state dict keeps
exactly upstream's keys (`anchors`, `anchor_grid` are upstream keys, the grids are not) and a tiling engine can
slice the buffers by row like any activation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from intradp_ros.core.sparse import SparseRows, sparse_select
from intradp_ros.models.kapao_blocks import C3, SPP, Concat, Conv, Focus

NUM_CLASSES = 18  # person + 17 keypoint objects
NUM_COORDS = 34  # 17 keypoints x (x, y)
NUM_OUTPUTS = 5 + NUM_CLASSES + NUM_COORDS  # 57 per anchor
NUM_ANCHORS = 3
STRIDES: tuple[int, ...] = (8, 16, 32, 64)
MAX_STRIDE = 64
DEFAULT_INPUT_HW: tuple[int, int] = (1280, 1280)
ANCHORS_PX: tuple[tuple[int, ...], ...] = (
    (19, 27, 44, 40, 38, 94),  # P3/8
    (96, 68, 86, 152, 180, 137),  # P4/16
    (140, 301, 303, 264, 238, 542),  # P5/32
    (436, 615, 739, 380, 925, 792),  # P6/64
)
DETECT_INDEX = 33
CANDIDATE_DENSITY = 0.002  # expected share of cells above the candidate threshold on real frames (cost model hint)


@dataclass(frozen=True)
class KapaoVariant:
    """Depth/width multipliers of one KAPAO size and the parameter count upstream reports for it."""

    name: str
    depth: float
    width: float
    parameters: int


VARIANTS = {
    "s6": KapaoVariant("s6", 0.33, 0.50, 12_559_980),
    "m6": KapaoVariant("m6", 0.67, 0.75, 35_755_404),
    "l6": KapaoVariant("l6", 1.0, 1.0, 77_047_852),
}

# (from, repeats, block, args) with l6 channel counts; index i gives the state-dict prefix `model.{i}.`.
_LAYERS: Sequence[tuple[int | list[int], int, str, list]] = (
    (-1, 1, "Focus", [64, 3]),  # 0
    (-1, 1, "Conv", [128, 3, 2]),  # 1
    (-1, 3, "C3", [128]),  # 2
    (-1, 1, "Conv", [256, 3, 2]),  # 3
    (-1, 9, "C3", [256]),  # 4
    (-1, 1, "Conv", [512, 3, 2]),  # 5
    (-1, 9, "C3", [512]),  # 6
    (-1, 1, "Conv", [768, 3, 2]),  # 7
    (-1, 3, "C3", [768]),  # 8
    (-1, 1, "Conv", [1024, 3, 2]),  # 9
    (-1, 1, "SPP", [1024, [3, 5, 7]]),  # 10
    (-1, 3, "C3", [1024, False]),  # 11
    (-1, 1, "Conv", [768, 1, 1]),  # 12
    (-1, 1, "Upsample", []),  # 13
    ([-1, 8], 1, "Concat", []),  # 14
    (-1, 3, "C3", [768, False]),  # 15
    (-1, 1, "Conv", [512, 1, 1]),  # 16
    (-1, 1, "Upsample", []),  # 17
    ([-1, 6], 1, "Concat", []),  # 18
    (-1, 3, "C3", [512, False]),  # 19
    (-1, 1, "Conv", [256, 1, 1]),  # 20
    (-1, 1, "Upsample", []),  # 21
    ([-1, 4], 1, "Concat", []),  # 22
    (-1, 3, "C3", [256, False]),  # 23 (P3/8)
    (-1, 1, "Conv", [256, 3, 2]),  # 24
    ([-1, 20], 1, "Concat", []),  # 25
    (-1, 3, "C3", [512, False]),  # 26 (P4/16)
    (-1, 1, "Conv", [512, 3, 2]),  # 27
    ([-1, 16], 1, "Concat", []),  # 28
    (-1, 3, "C3", [768, False]),  # 29 (P5/32)
    (-1, 1, "Conv", [768, 3, 2]),  # 30
    ([-1, 12], 1, "Concat", []),  # 31
    (-1, 3, "C3", [1024, False]),  # 32 (P6/64)
    ([23, 26, 29, 32], 1, "Detect", []),  # 33
)


def _channels(c: int, width: float) -> int:
    """Upstream's width scaling: ceil(c * w / 8) * 8."""
    return int(math.ceil(c * width / 8) * 8)


def _repeats(n: int, depth: float) -> int:
    """Upstream's depth scaling for repeated blocks."""
    return max(round(n * depth), 1) if n > 1 else n


def check_image_size(image: Any, built: Sequence[int]) -> None:
    """An image whose sides are not multiples of 64 (the largest stride) is refused with both sizes named (instead of
    an opaque size mismatch deep in the network); other sizes than the build size run, the decode adapting its grids
    (`Detect._level`). Only real tensors are checked: graph capture traces with proxies, so the check adds nothing to
    the captured graph (and nothing is stored on the module, which checkpoints pickle)."""
    if isinstance(image, torch.Tensor) and image.dim() >= 2:
        got = (int(image.shape[-2]), int(image.shape[-1]))
        if got != tuple(built) and (got[0] % MAX_STRIDE or got[1] % MAX_STRIDE or min(got) <= 0):
            raise ValueError(
                f"KAPAO was built for input {built[0]}x{built[1]} (H x W) but got an image of {got[0]}x{got[1]}, "
                f"whose sides are not multiples of {MAX_STRIDE}: letterbox the image to {built[0]}x{built[1]} "
                "(intradp_ros.models.letterbox)"
            )


def check_input_hw(input_hw: Sequence[int]) -> tuple[int, int]:
    """Validate a KAPAO input size: two positive multiples of 64 (the largest stride)."""
    if len(input_hw) != 2:
        raise ValueError(f"KAPAO input size must be (height, width), got {tuple(input_hw)}")
    h, w = int(input_hw[0]), int(input_hw[1])
    if h <= 0 or w <= 0 or h % MAX_STRIDE or w % MAX_STRIDE:
        raise ValueError(f"KAPAO input size must be positive multiples of {MAX_STRIDE}, got {h}x{w}")
    return h, w


class Detect(nn.Module):
    """Per-level 1x1 conv to 3 x 57 outputs and the KAPAO decode (boxes, objectness, classes, keypoints)."""

    def __init__(
        self,
        ch: Sequence[int],
        input_hw: Sequence[int] = DEFAULT_INPUT_HW,
        anchors: Sequence[Sequence[int]] = ANCHORS_PX,
        strides: Sequence[int] = STRIDES,
    ) -> None:
        super().__init__()
        self.nc = NUM_CLASSES
        self.num_coords = NUM_COORDS
        self.no = NUM_OUTPUTS
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        self.strides: tuple[float, ...] = tuple(float(s) for s in strides)
        a = torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2)
        stride_t = torch.tensor(self.strides, dtype=torch.float32).view(-1, 1, 1)
        self.register_buffer("anchors", a / stride_t)  # upstream: grid units
        self.register_buffer("anchor_grid", a.clone().view(self.nl, 1, -1, 1, 1, 2))  # upstream: pixels
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)
        self._init_biases()
        self.input_hw = check_input_hw(input_hw)
        self._build_decode_buffers()
        # Anchors come from the checkpoint: rebuild the full-extent copies whenever a state dict is loaded.
        self.register_load_state_dict_post_hook(lambda module, _keys: module._build_decode_buffers())

    def _init_biases(self) -> None:
        """Objectness/class bias priors (as upstream initialises them) so random weights give few candidates."""
        with torch.no_grad():
            for conv, s in zip(self.m, self.strides):
                b = conv.bias.view(self.na, -1)
                b[:, 4] += math.log(8 / (640 / s) ** 2)
                b[:, 5 : 5 + self.nc] += math.log(0.6 / (self.nc - 0.99))

    def level_shapes(self) -> list[tuple[int, int]]:
        """(H_l, W_l) of every detection level at the build-time input size."""
        h, w = self.input_hw
        return [(h // int(s), w // int(s)) for s in self.strides]

    def set_input_size(self, input_hw: Sequence[int]) -> None:
        """Rebuild the decode grids for another input size (the graph is specialised to one size)."""
        self.input_hw = check_input_hw(input_hw)
        self._build_decode_buffers()

    def _build_decode_buffers(self) -> None:
        """Full-extent grids [1, 3, H, W, 2|34] per level from the current `anchor_grid` (non-persistent)."""
        device = self.anchor_grid.device
        dtype = self.anchor_grid.dtype if self.anchor_grid.is_floating_point() else torch.float32
        kp = self.num_coords // 2
        for i, (ny, nx) in enumerate(self.level_shapes()):
            grid = cell_grid(0, ny, nx, self.na, device, dtype)
            anchor = self.anchor_grid[i].to(dtype).expand(1, self.na, ny, nx, 2).contiguous()
            self.register_buffer(f"grid{i}", grid, persistent=False)
            self.register_buffer(f"anchor_wh{i}", anchor, persistent=False)
            self.register_buffer(f"kp_anchor{i}", anchor.repeat(1, 1, 1, 1, kp), persistent=False)
            self.register_buffer(f"kp_offset{i}", (grid * self.strides[i]).repeat(1, 1, 1, 1, kp), persistent=False)

    def _level(self, xs: list[torch.Tensor], i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw map [B, 3, H_i, W_i, 57] of level i and its decode. A real map of another size than the build size's
        (an eager call on another multiple-of-64 image) is decoded with grids made for its size, the same values
        a model built for that size gives; a traced map (graph capture) always uses the full-extent buffers."""
        p = self.m[i](xs[i]).unflatten(1, (self.na, self.no)).permute(0, 1, 3, 4, 2).contiguous()
        if isinstance(p, torch.Tensor) and tuple(p.shape[2:4]) != tuple(getattr(self, f"grid{i}").shape[2:4]):
            return p, self.decode_rows(p, i, 0)
        y = decode_level(
            p,
            self.strides[i],
            getattr(self, f"grid{i}"),
            getattr(self, f"anchor_wh{i}"),
            getattr(self, f"kp_anchor{i}"),
            getattr(self, f"kp_offset{i}"),
            self.nc,
        )
        return p, y

    def forward(self, xs: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raw: list[torch.Tensor] = []
        decoded: list[torch.Tensor] = []
        for i in range(self.nl):
            p, y = self._level(xs, i)
            raw.append(p)
            decoded.append(y.flatten(1, 3))
        return torch.cat(decoded, 1), raw

    def candidates(
        self, xs: list[torch.Tensor], conf: float, density: float = CANDIDATE_DENSITY
    ) -> tuple[SparseRows, ...]:
        """Per level, the decoded cells with objectness > conf (a sparse gather: each side of a split inference
        filters its own rows, so the dense maps never travel). Positions index the level's [B, 3, H, W] grid."""
        out = []
        for i in range(self.nl):
            _, y = self._level(xs, i)
            out.append(sparse_select(y[..., 4] > conf, y, density=density))
        return tuple(out)

    def decode_rows(self, raw_rows: torch.Tensor, level: int, row_start: int) -> torch.Tensor:
        """Decode rows [row_start, row_start + h) of one level's raw map [B, 3, h, W, 57] with absolute positions.

        Gives exactly the same values as the full forward's decode of those rows, so a side holding only some
        rows of a level can decode and filter them itself.
        """
        h, w = raw_rows.shape[2], raw_rows.shape[3]
        grid = cell_grid(row_start, h, w, self.na, raw_rows.device, raw_rows.dtype)
        anchor = self.anchor_grid[level].to(raw_rows.dtype).expand(1, self.na, h, w, 2)
        kp = self.num_coords // 2
        return decode_level(
            raw_rows,
            self.strides[level],
            grid,
            anchor,
            anchor.repeat(1, 1, 1, 1, kp),
            (grid * self.strides[level]).repeat(1, 1, 1, 1, kp),
            self.nc,
        )


def cell_grid(
    row_start: int, rows: int, cols: int, na: int, device: Any = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """[1, na, rows, cols, 2] absolute (x, y) cell indices for rows starting at `row_start`."""
    yv = torch.arange(row_start, row_start + rows, device=device, dtype=dtype)
    xv = torch.arange(cols, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(yv, xv, indexing="ij")
    return torch.stack((gx, gy), -1).expand(1, na, rows, cols, 2).contiguous()


def decode_level(
    p: torch.Tensor,
    stride: float,
    grid: torch.Tensor,
    anchor_wh: torch.Tensor,
    kp_anchor: torch.Tensor,
    kp_offset: torch.Tensor,
    nc: int = NUM_CLASSES,
) -> torch.Tensor:
    """KAPAO decode of raw maps [..., 57], element-wise given same-shaped grid/anchor tensors.

    xy = (2 s - 0.5 + grid) * stride; wh = (2 s)^2 * anchor; keypoints = (4 s - 2) * anchor + grid * stride.
    """
    s = p.sigmoid()
    xy = (s[..., 0:2] * 2.0 - 0.5 + grid) * stride
    wh = (s[..., 2:4] * 2.0) ** 2 * anchor_wh
    kp = (s[..., 5 + nc :] * 4.0 - 2.0) * kp_anchor + kp_offset
    return torch.cat((xy, wh, s[..., 4 : 5 + nc], kp), -1)


class KapaoModel(nn.Module):
    """The KAPAO network: `model.{0..33}` exactly as upstream, uint8 image in, (detections, raw maps) out."""

    def __init__(self, variant: str = "l6", input_hw: Sequence[int] = DEFAULT_INPUT_HW) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown KAPAO variant {variant!r}; choose one of {sorted(VARIANTS)}")
        self.variant = VARIANTS[variant]
        self.input_hw = check_input_hw(input_hw)
        self.model, self.save = _build_layers(self.variant, self.input_hw)
        self.stride = torch.tensor(STRIDES, dtype=torch.float32)  # plain attribute, as upstream

    @property
    def detect(self) -> Detect:
        """The Detect head (layer 33)."""
        return self.model[DETECT_INDEX]

    def set_input_size(self, input_hw: Sequence[int]) -> None:
        """Specialise the decode to another input size (H, W multiples of 64)."""
        self.input_hw = check_input_hw(input_hw)
        self.detect.set_input_size(self.input_hw)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.detect(self.detect_inputs(image))

    def detect_inputs(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Layers 0..32: the four feature maps the Detect head reads."""
        check_image_size(image, self.input_hw)
        x: Any = image.float() / 255.0
        outputs: list[Any] = []
        for m in self.model[:DETECT_INDEX]:
            if m.f != -1:
                x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
            x = m(x)
            outputs.append(x if m.i in self.save else None)
        f = self.detect.f
        return [x if j == -1 else outputs[j] for j in f]


class KapaoCandidates(nn.Module):
    """The robot's deployment graph of KAPAO: the image in, per level the candidate cells above `conf` out.

    Post-processing (NMS, keypoint fusion) needs only the cells whose objectness passes the candidate
    threshold; making that filter the end of the graph (a sparse gather) lets each side send only its
    survivors instead of the dense detection maps (17 MB at 1280x960). `poses_from_candidate_sets` merges
    the levels back into upstream's order, so the poses equal those from the full forward.
    """

    def __init__(self, net: KapaoModel, conf: float, density: float = CANDIDATE_DENSITY) -> None:
        super().__init__()
        self.net = net
        self.conf = float(conf)
        self.density = float(density)

    @property
    def detect(self) -> Detect:
        return self.net.detect

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.net.input_hw

    def forward(self, image: torch.Tensor) -> tuple[SparseRows, ...]:
        return self.net.detect.candidates(self.net.detect_inputs(image), self.conf, self.density)


def _build_layers(variant: KapaoVariant, input_hw: tuple[int, int]) -> tuple[nn.Sequential, list[int]]:
    """Instantiate the 34 layers with the variant's depth/width multipliers."""
    ch = [3]
    layers: list[nn.Module] = []
    save: list[int] = []
    for i, (f, n, kind, args) in enumerate(_LAYERS):
        n = _repeats(n, variant.depth)
        c1 = ch[f] if isinstance(f, int) else None
        if kind == "Focus":
            c2 = _channels(args[0], variant.width)
            m: nn.Module = Focus(c1, c2, args[1])
        elif kind == "Conv":
            c2 = _channels(args[0], variant.width)
            m = Conv(c1, c2, args[1], args[2])
        elif kind == "C3":
            c2 = _channels(args[0], variant.width)
            shortcut = args[1] if len(args) > 1 else True
            m = C3(c1, c2, n, shortcut)
        elif kind == "SPP":
            c2 = _channels(args[0], variant.width)
            m = SPP(c1, c2, args[1])
        elif kind == "Upsample":
            c2 = c1
            m = nn.Upsample(scale_factor=2.0, mode="nearest")
        elif kind == "Concat":
            c2 = sum(ch[j] if j != -1 else ch[-1] for j in f)
            m = Concat(1)
        elif kind == "Detect":
            c2 = 0
            m = Detect([ch[j] for j in f], input_hw)
        else:  # pragma: no cover - the table above is fixed
            raise AssertionError(kind)
        m.f, m.i = f, i
        save.extend(j for j in ([f] if isinstance(f, int) else f) if j != -1)
        layers.append(m)
        if i == 0:
            ch = []
        ch.append(c2)
    return nn.Sequential(*layers), sorted(set(save))
