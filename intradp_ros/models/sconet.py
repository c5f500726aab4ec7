"""SCONet (AGRNav's occlusion-aware semantic scene completion network), written from MODELS.md.

Graph input: the unpacked occupancy grid [B, 1, X, Z, Y] as uint8 0/1 (cast to float inside the graph), so the
robot can send bit-packed rows. Output: logits [B, 20, X, Z, Y] (upstream wraps them in a dict under
`pred_semantic_1_1`; a plain tensor keeps the graph simple for the tiling engine). State-dict keys equal upstream's.
The default grid (256, 32, 256) is the real model; smaller grids (X, Y multiples of 8) exist for fast tests only,
because MobileViTv2Attention's Linear layers fix the map size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from intradp_ros.core.sparse import SparseRows, sparse_select

NUM_CLASSES = 20
DEFAULT_GRID_XZY: tuple[int, int, int] = (256, 32, 256)
PARAMETERS = {"plain": 839_499, "ds": 646_043}


class DepthwiseSeparableConv(nn.Module):
    """Depthwise 3x3 (groups = c_in) then pointwise 1x1, both without bias (the `_ds` variant's encoder conv)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.depthwise_conv = nn.Conv2d(c_in, c_in, kernel_size, padding=padding, groups=c_in, bias=False)
        self.pointwise_conv = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


def _encoder_conv(c_in: int, c_out: int, depthwise_separable: bool) -> nn.Module:
    if depthwise_separable:
        return DepthwiseSeparableConv(c_in, c_out)
    return nn.Conv2d(c_in, c_out, 3, padding=1)


def _encoder_block(c_in: int, c_out: int, pool: bool, depthwise_separable: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.MaxPool2d(2)] if pool else []
    layers += [
        _encoder_conv(c_in, c_out, depthwise_separable),
        nn.ReLU(),
        _encoder_conv(c_out, c_out, depthwise_separable),
        nn.ReLU(),
    ]
    return nn.Sequential(*layers)


class CrissCrossAttention(nn.Module):
    """Each position attends to its row and column (one softmax over H + W energies, own position masked once)."""

    def __init__(self, channels: int, map_hw: tuple[int, int]) -> None:
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // 8, 1)
        self.key_conv = nn.Conv2d(channels, channels // 8, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        h, w = map_hw
        self.height = h
        # energy_H[b, h, w, h'] gets -inf where h' == h (the position itself is counted in the row term only).
        mask = torch.zeros(h, 1, h)
        mask[torch.arange(h), 0, torch.arange(h)] = float("-inf")
        self.register_buffer("self_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query_conv(x)
        k = self.key_conv(x)
        v = self.value_conv(x)
        energy_h = torch.einsum("bchw,bcgw->bhwg", q, k) + self.self_mask
        energy_w = torch.einsum("bchw,bchv->bhwv", q, k)
        att = torch.softmax(torch.cat((energy_h, energy_w), -1), -1)
        att_h = att[..., : self.height]
        att_w = att[..., self.height :]
        out_h = torch.einsum("bcgw,bhwg->bchw", v, att_h)
        out_w = torch.einsum("bchv,bhwv->bchw", v, att_w)
        return self.gamma * (out_h + out_w) + x


class MobileViTv2Attention(nn.Module):
    """Separable self-attention over each channel's flattened map (AGRNav's use: one query per channel row)."""

    def __init__(self, d_model: int, h: int, w: int) -> None:
        super().__init__()
        self.h, self.w = h, w
        self.fc_i = nn.Linear(h * w, 1)
        self.fc_k = nn.Linear(h * w, d_model)
        self.fc_v = nn.Linear(h * w, d_model)
        self.fc_o = nn.Linear(d_model, h * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = x.flatten(2).unsqueeze(2)  # [B, C, 1, h*w]: the size-1 axis is upstream's token axis
        weight_i = torch.softmax(self.fc_i(r), dim=2)  # [B, C, 1, 1], identically 1
        context = torch.sum(weight_i * self.fc_k(r), dim=2, keepdim=True)
        out = self.fc_o(self.fc_v(r) * context)  # [B, C, 1, h*w]
        return out.squeeze(2).unflatten(2, (self.h, self.w))


class SegmentationHead(nn.Module):
    """3D head: the 2D channels become a depth axis; Conv3d, ASPP of three dilations with residual, Conv3d to
    classes."""

    def __init__(self, inplanes: int, planes: int, nbr_classes: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.conv0 = nn.Conv3d(inplanes, planes, 3, padding=1)
        self.conv1 = nn.ModuleList(nn.Conv3d(planes, planes, 3, padding=d, dilation=d, bias=False) for d in dilations)
        self.bn1 = nn.ModuleList(nn.BatchNorm3d(planes) for _ in dilations)
        self.conv2 = nn.ModuleList(nn.Conv3d(planes, planes, 3, padding=d, dilation=d, bias=False) for d in dilations)
        self.bn2 = nn.ModuleList(nn.BatchNorm3d(planes) for _ in dilations)
        self.relu = nn.ReLU()
        self.conv_classes = nn.Conv3d(planes, nbr_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv0(x.unsqueeze(1)))
        y = self.bn2[0](self.conv2[0](self.relu(self.bn1[0](self.conv1[0](x)))))
        for i in range(1, len(self.conv1)):
            y = y + self.bn2[i](self.conv2[i](self.relu(self.bn1[i](self.conv1[i](x)))))
        x = self.relu(y + x)
        return self.conv_classes(x)


class SCONet(nn.Module):
    """SCONet, plain (AGRNav's default 0.84M model) or depthwise-separable encoder (`depthwise_separable=True`)."""

    def __init__(
        self,
        depthwise_separable: bool = False,
        grid_xzy: Sequence[int] = DEFAULT_GRID_XZY,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        gx, f, gy = (int(v) for v in grid_xzy)
        if gx % 8 or gy % 8 or gx <= 0 or gy <= 0 or f % 8 or f <= 0:
            raise ValueError(f"SCONet grid (X, Z, Y) needs X, Y, Z positive multiples of 8, got {tuple(grid_xzy)}")
        self.grid_xzy = (gx, f, gy)
        self.depthwise_separable = bool(depthwise_separable)
        c2, c4, c8 = int(f * 1.5), int(f * 2), int(f * 2.5)
        self.Encoder_block1 = _encoder_block(f, f, False, depthwise_separable)
        self.Encoder_block2 = _encoder_block(f, c2, True, depthwise_separable)
        self.Encoder_block3 = _encoder_block(c2, c4, True, depthwise_separable)
        self.Encoder_block4 = _encoder_block(c4, c8, True, depthwise_separable)
        self.criss_cross_attention = CrissCrossAttention(c8, (gx // 8, gy // 8))
        self.Attention_block_1_8 = MobileViTv2Attention(f // 8, gx // 4, gy // 4)
        self.Attention_block_1_4 = MobileViTv2Attention(f // 4, gx // 2, gy // 2)
        self.conv_out_scale_1_8 = nn.Conv2d(c8, f // 8, 3, padding=1)
        self.deconv_1_8__1_2 = nn.ConvTranspose2d(f // 8, f // 8, 4, stride=4)
        self.deconv_1_8__1_1 = nn.ConvTranspose2d(f // 8, f // 8, 8, stride=8)
        self.deconv1_8 = nn.ConvTranspose2d(f // 8, f // 8, 6, stride=2, padding=2)
        self.conv1_4 = nn.Conv2d(c4 + f // 8, c4, 3, padding=1)
        self.conv_out_scale_1_4 = nn.Conv2d(c4, f // 4, 3, padding=1)
        self.deconv_1_4__1_1 = nn.ConvTranspose2d(f // 4, f // 4, 4, stride=4)
        self.deconv1_4 = nn.ConvTranspose2d(f // 4, f // 4, 6, stride=2, padding=2)
        self.conv1_2 = nn.Conv2d(c2 + f // 4 + f // 8, c2, 3, padding=1)
        self.conv_out_scale_1_2 = nn.Conv2d(c2, f // 2, 3, padding=1)
        self.deconv1_2 = nn.ConvTranspose2d(f // 2, f // 2, 6, stride=2, padding=2)
        self.conv1_1 = nn.Conv2d(f // 8 + f // 4 + f // 2 + f, f, 3, padding=1)
        self.seg_head_1_1 = SegmentationHead(1, 8, num_classes, [1, 2, 3])
        self.relu = nn.ReLU()

    def forward(self, occupancy: torch.Tensor) -> torch.Tensor:
        x = occupancy.float().squeeze(1).permute(0, 2, 1, 3)  # [B, X, Z, Y] -> [B, Z, X, Y]: heights are channels
        skip_1_1 = self.Encoder_block1(x)
        skip_1_2 = self.Encoder_block2(skip_1_1)
        skip_1_4 = self.Encoder_block3(skip_1_2)
        skip_1_8 = self.criss_cross_attention(self.Encoder_block4(skip_1_4))

        s8 = self.conv_out_scale_1_8(skip_1_8)
        out = self.Attention_block_1_8(self.deconv1_8(s8))
        out = self.relu(self.conv1_4(torch.cat((out, skip_1_4), 1)))
        s4 = self.conv_out_scale_1_4(out)
        out = self.Attention_block_1_4(self.deconv1_4(s4))
        out = torch.cat((out, skip_1_2, self.deconv_1_8__1_2(s8)), 1)
        out = self.relu(self.conv1_2(out))
        s2 = self.conv_out_scale_1_2(out)
        out = torch.cat((self.deconv1_2(s2), skip_1_1, self.deconv_1_4__1_1(s4), self.deconv_1_8__1_1(s8)), 1)
        out = self.relu(self.conv1_1(out))
        logits = self.seg_head_1_1(out)  # [B, 20, Z, X, Y]
        return logits.permute(0, 1, 3, 2, 4)  # [B, 20, X, Z, Y]


COMPLETION_DENSITY = 0.01  # expected share of voxels that become occupied on real scans (cost model hint)


class SconetCompletion(nn.Module):
    """The robot's deployment graph of SCONet: occupancy in, the voxels predicted occupied that were empty out.

    AGRNav's planner needs only those voxels (and their classes), so the graph ends in the per-voxel filter
    (a sparse gather): each side sends only its survivors instead of the 20-class logits (168 MB at full size).
    Positions are flat (x, y, z) indices of the [B, X, Y, Z] grid, the order `CompletedVoxels` uses.
    """

    def __init__(self, net: SCONet, density: float = COMPLETION_DENSITY) -> None:
        super().__init__()
        self.net = net
        self.density = float(density)

    @property
    def grid_xzy(self) -> tuple[int, int, int]:
        return self.net.grid_xzy

    def forward(self, occupancy: torch.Tensor) -> SparseRows:
        cls = self.net(occupancy).argmax(1)  # [B, X, Z, Y]
        new = (cls != 0) & (occupancy[:, 0] == 0)
        return sparse_select(new.permute(0, 1, 3, 2), cls.to(torch.uint8).permute(0, 1, 3, 2), density=self.density)
