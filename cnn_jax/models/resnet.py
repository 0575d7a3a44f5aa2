"""ResNet (He et al. 2015, "Deep Residual Learning for Image Recognition", Table 1).

The variants differ only in `stage_sizes` and the block; widths double per stage from
`width` (64 for ImageNet, Table 1; 16 for the CIFAR-10 nets of Section 4.2).
v1.5 (stride in the bottleneck's 3x3) is the default; `downsample_in_3x3=False` gives the
paper's v1. `stem='small'` swaps the 7x7/2 conv + max-pool for one 3x3/1 conv, for 28-32
px inputs (CIFAR, Fashion-MNIST). `shortcut` picks one of the Section 3.3 options:
'projection' (B, the default: 1x1 conv + BN where the shape changes), 'zero_pad' (A:
zero-padded identity, no parameters), 'projection_all' (C: 1x1 conv + BN on every
block), or 'none' (no shortcut at all: the plain nets of Sections 4.1 and 4.2).
`bn_epsilon` and `conv_bias` (a bias in every conv, next to its BatchNorm) exist for
imported weights: Keras applications' ResNets use 1.001e-5 and biased convs.

Registered: resnet18..152 and plain18/34 (ImageNet, Table 1 / Section 4.1) and the
CIFAR-10 nets resnet20..110 and plain20..110 (Section 4.2).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.layers import BasicBlock, Bottleneck, ClassifierHead, ConvNormAct, max_pool
from cnn_jax.models.registry import register

STEMS = ("imagenet", "small")


class ResNet(nn.Module):
  stage_sizes: Sequence[int]
  block: type[nn.Module]
  num_classes: int = 1000
  width: int = 64
  stem: str = "imagenet"
  shortcut: str = "projection"
  downsample_in_3x3: bool = True
  zero_init_last: bool = False
  bn_epsilon: float = 1e-5
  conv_bias: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv_block = functools.partial(ConvNormAct, bn_epsilon=self.bn_epsilon,
                                   use_bias=self.conv_bias, dtype=self.dtype)
    if self.stem == "imagenet":
      x = conv_block(self.width, 7, 2, name="stem_conv")(x, train)
      x = max_pool(x, 3, 2, padding=1)
    elif self.stem == "small":
      x = conv_block(self.width, 3, 1, name="stem_conv")(x, train)
    else:
      raise ValueError(f"unknown stem {self.stem!r}; choose one of {STEMS}")
    self.sow("intermediates", "stem", x)
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        x = self.block(self.width * 2**i, strides=2 if i > 0 and j == 0 else 1,
                       shortcut=self.shortcut, downsample_in_3x3=self.downsample_in_3x3,
                       conv_block=conv_block, zero_init_last=self.zero_init_last,
                       name=f"stage{i + 1}_block{j + 1}")(x, train)
      self.sow("intermediates", f"stage{i + 1}", x)
    return ClassifierHead(self.num_classes, dtype=self.dtype, name="head")(x, train)


# Table 1 of the paper: blocks per stage.
DEPTHS = {
    18: ((2, 2, 2, 2), BasicBlock),
    34: ((3, 4, 6, 3), BasicBlock),
    50: ((3, 4, 6, 3), Bottleneck),
    101: ((3, 4, 23, 3), Bottleneck),
    152: ((3, 8, 36, 3), Bottleneck),
}

for _depth, (_stages, _block) in DEPTHS.items():
  register(f"resnet{_depth}", functools.partial(ResNet, stage_sizes=_stages, block=_block),
           family="resnet", input_size=224, min_input_size=32,
           paper="He et al. 2015, arXiv:1512.03385")

# Section 4.1: the plain baselines of the degradation study are ResNet-18/34 with every
# shortcut removed. Option A (zero-padded identity shortcuts, the paper's 18/34) is
# `create("resnet18", shortcut="zero_pad")`; the two have the same parameters.
for _depth in (18, 34):
  register(f"plain{_depth}", functools.partial(ResNet, stage_sizes=DEPTHS[_depth][0],
                                               block=DEPTHS[_depth][1], shortcut="none"),
           family="resnet", input_size=224, min_input_size=32,
           paper="He et al. 2015, arXiv:1512.03385")

# Section 4.2, CIFAR-10: a 3x3/1 stem conv, three stages of n basic blocks on 32, 16 and 8
# px maps with 16, 32 and 64 filters, global average pooling and a 10-way FC layer:
# 6n + 2 weighted layers. "we use identity shortcuts in all cases (i.e., option A)", so
# each ResNet and its plain twin have the same parameters (Table 6: 0.27M ... 1.7M).
# Depth: n blocks per stage.
CIFAR_DEPTHS = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}

# Normalisation stays ImageNet's default: the dataset's own statistics (Fashion-MNIST's,
# and CIFAR's where a dataset supplies them) take precedence in the input pipeline.
for _depth, _n in CIFAR_DEPTHS.items():
  _cifar = functools.partial(ResNet, stage_sizes=(_n,) * 3, block=BasicBlock, width=16,
                             stem="small")
  for _name, _shortcut in ((f"resnet{_depth}", "zero_pad"), (f"plain{_depth}", "none")):
    register(_name, functools.partial(_cifar, shortcut=_shortcut), family="resnet",
             input_size=32, min_input_size=8,
             paper="He et al. 2015, arXiv:1512.03385 (Section 4.2, CIFAR-10)")
