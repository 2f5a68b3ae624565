"""Dilated residual conv stacks and the strided down/up-sampling blocks built from them.

Shared by the VQ-VAE encoders/decoders and the UP prior's LOW-token conditioner. The numerics are
those of the Jukebox-derived original (`Resnet1D`, `EncoderConvBlock`, `DecoderConvBock`); the
module names are ours and `im2wav.convert` maps the original state-dict keys onto them.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ResidualUnit(nn.Module):
    """`x + res_scale * conv1x1(relu(conv_dilated(relu(x))))`, length preserving.

    Args:
        channels: input and output channels.
        hidden_channels: channels between the two convolutions (`m_conv * channels`).
        dilation: dilation of the kernel-3 convolution (its padding equals the dilation).
        res_scale: multiplier on the residual branch.
    """

    def __init__(self, channels: int, hidden_channels: int, dilation: int = 1, res_scale: float = 1.0):
        super().__init__()
        self.dilated_conv = nn.Conv1d(channels, hidden_channels, 3, 1, padding=dilation, dilation=dilation)
        self.pointwise_conv = nn.Conv1d(hidden_channels, channels, 1, 1, 0)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C, T)
        h = self.dilated_conv(torch.relu(x))
        h = self.pointwise_conv(torch.relu(h))
        return x + self.res_scale * h


def residual_dilations(depth: int, growth_rate: int, cycle: int | None, reverse: bool) -> list[int]:
    """Dilation of each unit of a `ResidualStack`: `growth_rate ** (d % cycle)`, optionally reversed."""
    dilations = [growth_rate ** (d if cycle is None else d % cycle) for d in range(depth)]
    return dilations[::-1] if reverse else dilations


class ResidualStack(nn.Module):
    """`depth` residual units with dilations `growth_rate ** (d % cycle)` (the original `Resnet1D`).

    Args:
        channels: width of the stack.
        depth: number of residual units.
        m_conv: hidden width multiplier inside each unit.
        dilation_growth_rate: base of the dilation schedule.
        dilation_cycle: restart the schedule every `dilation_cycle` units (`None`: never).
        res_scale: scale each residual branch by `1/sqrt(depth)` instead of 1.
        reverse_dilation: run the units in reversed dilation order (VQ-VAE decoders).
    """

    def __init__(
        self,
        channels: int,
        depth: int,
        m_conv: float = 1.0,
        dilation_growth_rate: int = 1,
        dilation_cycle: int | None = None,
        res_scale: bool = False,
        reverse_dilation: bool = False,
    ):
        super().__init__()
        scale = 1.0 / math.sqrt(depth) if res_scale else 1.0
        dilations = residual_dilations(depth, dilation_growth_rate, dilation_cycle, reverse_dilation)
        self.units = nn.ModuleList(
            ResidualUnit(channels, int(m_conv * channels), dilation=d, res_scale=scale) for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.units:
            x = unit(x)
        return x


class DownsampleStep(nn.Module):
    """One x`stride` downsampling: strided conv (kernel 2*stride, padding stride//2), then residual stack."""

    def __init__(self, in_channels: int, channels: int, stride: int, **stack_kwargs):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, channels, 2 * stride, stride, stride // 2)
        self.residual = ResidualStack(channels, **stack_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, T) -> (B, C, T // stride)
        return self.residual(self.conv(x))


class Downsampler(nn.Module):
    """`num_steps` downsampling steps then a kernel-3 projection (the original `EncoderConvBlock`).

    Args:
        in_channels: channels of the input signal.
        out_channels: channels of the output (the codebook width for a VQ-VAE encoder).
        num_steps: how many x`stride` downsamplings (`down_t`).
        stride: stride of each step (`stride_t`).
        width: channels inside the stack.
        depth, m_conv, dilation_growth_rate, dilation_cycle, res_scale: see `ResidualStack`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_steps: int,
        stride: int,
        width: int,
        depth: int,
        m_conv: float = 1.0,
        dilation_growth_rate: int = 1,
        dilation_cycle: int | None = None,
        res_scale: bool = False,
    ):
        super().__init__()
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        stack = dict(depth=depth, m_conv=m_conv, dilation_growth_rate=dilation_growth_rate,
                     dilation_cycle=dilation_cycle, res_scale=res_scale)
        self.steps = nn.ModuleList(
            DownsampleStep(in_channels if i == 0 else width, width, stride, **stack) for i in range(num_steps)
        )
        self.proj = nn.Conv1d(width, out_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, T) -> (B, C_out, T // stride**num_steps)
        for step in self.steps:
            x = step(x)
        return self.proj(x)


class UpsampleStep(nn.Module):
    """One x`stride` upsampling: residual stack, then transposed conv (kernel 2*stride, padding stride//2)."""

    def __init__(self, channels: int, out_channels: int, stride: int, **stack_kwargs):
        super().__init__()
        self.residual = ResidualStack(channels, **stack_kwargs)
        self.conv = nn.ConvTranspose1d(channels, out_channels, 2 * stride, stride, stride // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C_out, T * stride)
        return self.conv(self.residual(x))


class Upsampler(nn.Module):
    """A kernel-3 projection then `num_steps` upsampling steps (the original `DecoderConvBock`).

    Args:
        in_channels: channels of the input (the codebook width for a VQ-VAE decoder).
        out_channels: channels after the last upsampling step.
        num_steps: how many x`stride` upsamplings.
        stride: stride of each step.
        width: channels inside the stack.
        depth, m_conv, dilation_growth_rate, dilation_cycle, res_scale, reverse_dilation:
            see `ResidualStack`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_steps: int,
        stride: int,
        width: int,
        depth: int,
        m_conv: float = 1.0,
        dilation_growth_rate: int = 1,
        dilation_cycle: int | None = None,
        res_scale: bool = False,
        reverse_dilation: bool = False,
    ):
        super().__init__()
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        stack = dict(depth=depth, m_conv=m_conv, dilation_growth_rate=dilation_growth_rate,
                     dilation_cycle=dilation_cycle, res_scale=res_scale, reverse_dilation=reverse_dilation)
        self.proj = nn.Conv1d(in_channels, width, 3, 1, 1)
        self.steps = nn.ModuleList(
            UpsampleStep(width, out_channels if i == num_steps - 1 else width, stride, **stack)
            for i in range(num_steps)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, T) -> (B, C_out, T * stride**num_steps)
        x = self.proj(x)
        for step in self.steps:
            x = step(x)
        return x
