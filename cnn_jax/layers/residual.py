"""ResNet's residual blocks (He et al. 2015, Fig. 2 and 5) and their shortcut options."""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.layers.conv import ConvNormAct

Dtype = Any

SHORTCUTS = ("projection", "zero_pad", "projection_all", "none")


class Shortcut(nn.Module):
  """The identity path of a residual block when the shape may change (Section 3.3).

  'projection' is the paper's option B (1x1 conv + BN only where the shape changes),
  'zero_pad' is option A (strided identity, extra channels zero: no parameters),
  'projection_all' is option C (a 1x1 conv + BN on every block, even where the shapes
  match; Table 3: marginally better than B, not worth its parameters), and 'none' removes
  the shortcut (the paper's plain networks).
  """
  features: int
  strides: int
  kind: str = "projection"
  conv_block: Callable = ConvNormAct

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array | None:
    if self.kind not in SHORTCUTS:
      raise ValueError(f"unknown shortcut {self.kind!r}; choose one of {SHORTCUTS}")
    if self.kind == "none":
      return None
    if self.kind != "projection_all" and x.shape[-1] == self.features and self.strides == 1:
      return x
    if self.kind == "zero_pad":
      x = x[:, ::self.strides, ::self.strides, :]
      return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, self.features - x.shape[-1])))
    return self.conv_block(self.features, 1, self.strides, act=None, name="proj")(x, train)


def _add_residual(y, shortcut):
  return y if shortcut is None else y + shortcut


class BasicBlock(nn.Module):
  """Two 3x3 convs (ResNet-18/34)."""
  features: int
  strides: int = 1
  shortcut: str = "projection"
  downsample_in_3x3: bool = True  # unused: kept so every block takes the same fields
  conv_block: Callable = ConvNormAct
  zero_init_last: bool = False
  expansion = 1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    short = Shortcut(self.features, self.strides, self.shortcut, self.conv_block,
                     name="shortcut")(x, train)
    y = self.conv_block(self.features, 3, self.strides, name="conv1")(x, train)
    last_scale = nn.initializers.zeros if self.zero_init_last else nn.initializers.ones
    y = self.conv_block(self.features, 3, act=None, bn_scale_init=last_scale,
                        name="conv2")(y, train)
    return nn.relu(_add_residual(y, short))


class Bottleneck(nn.Module):
  """1x1 reduce, 3x3, 1x1 expand by 4 (ResNet-50/101/152).

  `downsample_in_3x3=True` is "v1.5" (torchvision, NVIDIA, the flax example): the stride
  sits in the 3x3, which costs more MACs and gains ~0.5% top-1. False is the paper's v1,
  striding in the first 1x1. Both have the same parameters.
  """
  features: int
  strides: int = 1
  shortcut: str = "projection"
  downsample_in_3x3: bool = True
  conv_block: Callable = ConvNormAct
  zero_init_last: bool = False
  expansion = 4

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    out = self.features * self.expansion
    short = Shortcut(out, self.strides, self.shortcut, self.conv_block,
                     name="shortcut")(x, train)
    s1, s3 = (1, self.strides) if self.downsample_in_3x3 else (self.strides, 1)
    y = self.conv_block(self.features, 1, s1, name="conv1")(x, train)
    y = self.conv_block(self.features, 3, s3, name="conv2")(y, train)
    last_scale = nn.initializers.zeros if self.zero_init_last else nn.initializers.ones
    y = self.conv_block(out, 1, act=None, bn_scale_init=last_scale, name="conv3")(y, train)
    return nn.relu(_add_residual(y, short))
