"""MobileNet v1 (Howard et al. 2017), v2 (Sandler et al. 2018) and v3 (Howard et al. 2019).

Each version is its paper's layer table as data (rows of `MobileStage`) and one loop,
`MobileNetBase.stages`, over a block from cnn_jax/layers/mobile.py. Padding is symmetric
(k//2, the torchvision convention the reference parameter counts come from); pass
`padding='SAME'` for TF-trained weights.
Intermediates: 'stem', then 'stageN' = the last feature map at stride 2**N (a new stage
starts at every stride-2 block), and 'pre_logits' from the head.

Ablation fields (each default is the paper's network):
  MobileNetV1.separable          False: "Conv MobileNet" (Howard et al. 2017, Table 4),
                                 every depthwise 3x3 + pointwise 1x1 pair replaced by one
                                 full 3x3 conv-BN-act (the pointwise's width, the
                                 depthwise's stride): 29.3M parameters, 4866M mult-adds.
  MobileNetV2.linear_bottleneck  False: ReLU6 after each block's projection conv
                                 (Sandler et al. 2018, Fig. 6a; Sec. 3.2 argues for linear).
  MobileNetV2.residual           False: no shortcuts between bottlenecks (Fig. 6b).
Only `separable` changes the parameters.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.layers import ClassifierHead, Conv, activation, hard_sigmoid, hard_swish
from cnn_jax.layers.mobile import (DepthwiseSeparable, InvertedResidual, MobileNetBase,
                                   MobileStage, make_divisible)
from cnn_jax.models.registry import register

PAPER_V1 = "Howard et al. 2017, arXiv:1704.04861"
PAPER_V2 = "Sandler et al. 2018, arXiv:1801.04381"
PAPER_V3 = "Howard et al. 2019, arXiv:1905.02244"

# Table 1 of MobileNet v1: the depthwise separable layers (3x3 depthwise, then 1x1 to
# `features`) after the 3x3/2 stem conv with 32 channels.
V1_STAGES = (
    MobileStage(kernel_size=3, features=64,   strides=1),
    MobileStage(kernel_size=3, features=128,  strides=2),
    MobileStage(kernel_size=3, features=128,  strides=1),
    MobileStage(kernel_size=3, features=256,  strides=2),
    MobileStage(kernel_size=3, features=256,  strides=1),
    MobileStage(kernel_size=3, features=512,  strides=2),
    MobileStage(kernel_size=3, features=512,  strides=1, repeats=5),
    MobileStage(kernel_size=3, features=1024, strides=2),
    MobileStage(kernel_size=3, features=1024, strides=1),
)


class MobileNetV1(MobileNetBase):
  """`width_multiplier` is the paper's alpha (Sec. 3.3): width = max(int(c * alpha), 8).

  `act` is 'relu' (the paper, Fig. 3) or 'relu6' (the TF / Keras release).
  `separable=False` is Table 4's "Conv MobileNet": each depthwise separable layer becomes
  one full 3x3 conv-BN-act with the pointwise conv's output width and the depthwise conv's
  stride (Fig. 3 left instead of right), named `block{i}` itself.
  """
  num_classes: int = 1000
  width_multiplier: float = 1.0
  act: str = "relu"
  dropout_rate: float = 0.0
  separable: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    act = activation(self.act)
    conv_block = self.conv_block(act=act)
    width = lambda c: max(int(c * self.width_multiplier), 8)
    x = self.stem(x, width(32), train, act=act)
    block = (functools.partial(DepthwiseSeparable, conv_block=conv_block) if self.separable
             else conv_block)
    x = self.stages(x, V1_STAGES, train, block=block, act=act, width=width)
    return ClassifierHead(self.num_classes, self.dropout_rate, dtype=self.dtype,
                          name="head")(x, train)


# Table 2 of MobileNet v2: expansion t, output channels c, repeats n, first stride s; after
# the 3x3/2 stem conv with 32 channels, a 1x1 conv to 1280 follows.
V2_STAGES = (
    MobileStage(kernel_size=3, expansion=1, features=16,  repeats=1, strides=1),
    MobileStage(kernel_size=3, expansion=6, features=24,  repeats=2, strides=2),
    MobileStage(kernel_size=3, expansion=6, features=32,  repeats=3, strides=2),
    MobileStage(kernel_size=3, expansion=6, features=64,  repeats=4, strides=2),
    MobileStage(kernel_size=3, expansion=6, features=96,  repeats=3, strides=1),
    MobileStage(kernel_size=3, expansion=6, features=160, repeats=3, strides=2),
    MobileStage(kernel_size=3, expansion=6, features=320, repeats=1, strides=1),
)


class MobileNetV2(MobileNetBase):
  """Inverted residuals with linear bottlenecks, ReLU6, widths divisible by 8 (Sec. 4).

  Fig. 6's ablations, both True in the paper's network and neither changing the
  parameters: `linear_bottleneck=False` puts ReLU6 after every block's 1x1 projection
  (Fig. 6a), `residual=False` removes the shortcuts between bottlenecks (Fig. 6b).
  """
  num_classes: int = 1000
  width_multiplier: float = 1.0
  dropout_rate: float = 0.2  # torchvision / TF-slim classifier dropout
  linear_bottleneck: bool = True
  residual: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv_block = self.conv_block(act=jax.nn.relu6)
    width = lambda c: make_divisible(c * self.width_multiplier, 8)
    x = self.stem(x, width(32), train, act=jax.nn.relu6)
    block = functools.partial(
        InvertedResidual, conv_block=conv_block, dtype=self.dtype, residual=self.residual,
        project_act=None if self.linear_bottleneck else jax.nn.relu6)
    x = self.stages(x, V2_STAGES, train, block=block, act=jax.nn.relu6, width=width)
    # The last conv is never thinned below 1280 (Sec. 6.1).
    x = conv_block(max(1280, width(1280)), 1, name="head_conv")(x, train)
    return ClassifierHead(self.num_classes, self.dropout_rate, dtype=self.dtype,
                          name="head")(x, train)


# Tables 1 and 2 of MobileNet v3: kernel, "exp size", #out, SE, NL, s per bneck layer,
# after a 3x3/2 stem conv with 16 channels and h-swish. NL: RE = ReLU, HS = h-swish.
RE, HS = nn.relu, hard_swish
V3_LARGE = (
    MobileStage(kernel_size=3, hidden=16,  features=16,  se=False, act=RE, strides=1),
    MobileStage(kernel_size=3, hidden=64,  features=24,  se=False, act=RE, strides=2),
    MobileStage(kernel_size=3, hidden=72,  features=24,  se=False, act=RE, strides=1),
    MobileStage(kernel_size=5, hidden=72,  features=40,  se=True,  act=RE, strides=2),
    MobileStage(kernel_size=5, hidden=120, features=40,  se=True,  act=RE, strides=1),
    MobileStage(kernel_size=5, hidden=120, features=40,  se=True,  act=RE, strides=1),
    MobileStage(kernel_size=3, hidden=240, features=80,  se=False, act=HS, strides=2),
    MobileStage(kernel_size=3, hidden=200, features=80,  se=False, act=HS, strides=1),
    MobileStage(kernel_size=3, hidden=184, features=80,  se=False, act=HS, strides=1),
    MobileStage(kernel_size=3, hidden=184, features=80,  se=False, act=HS, strides=1),
    MobileStage(kernel_size=3, hidden=480, features=112, se=True,  act=HS, strides=1),
    MobileStage(kernel_size=3, hidden=672, features=112, se=True,  act=HS, strides=1),
    MobileStage(kernel_size=5, hidden=672, features=160, se=True,  act=HS, strides=2),
    MobileStage(kernel_size=5, hidden=960, features=160, se=True,  act=HS, strides=1),
    MobileStage(kernel_size=5, hidden=960, features=160, se=True,  act=HS, strides=1),
)
V3_SMALL = (
    MobileStage(kernel_size=3, hidden=16,  features=16,  se=True,  act=RE, strides=2),
    MobileStage(kernel_size=3, hidden=72,  features=24,  se=False, act=RE, strides=2),
    MobileStage(kernel_size=3, hidden=88,  features=24,  se=False, act=RE, strides=1),
    MobileStage(kernel_size=5, hidden=96,  features=40,  se=True,  act=HS, strides=2),
    MobileStage(kernel_size=5, hidden=240, features=40,  se=True,  act=HS, strides=1),
    MobileStage(kernel_size=5, hidden=240, features=40,  se=True,  act=HS, strides=1),
    MobileStage(kernel_size=5, hidden=120, features=48,  se=True,  act=HS, strides=1),
    MobileStage(kernel_size=5, hidden=144, features=48,  se=True,  act=HS, strides=1),
    MobileStage(kernel_size=5, hidden=288, features=96,  se=True,  act=HS, strides=2),
    MobileStage(kernel_size=5, hidden=576, features=96,  se=True,  act=HS, strides=1),
    MobileStage(kernel_size=5, hidden=576, features=96,  se=True,  act=HS, strides=1),
)


class MobileNetV3(MobileNetBase):
  """h-swish, squeeze-excite after the depthwise conv on the expanded width (Sec. 5).

  The head (Sec. 5.1, "efficient last stage"): 1x1 conv-BN-h-swish to 6x the last
  width (960 / 576), global pool, then a 1x1 conv with bias and no BN to `head_features`
  (1280 / 1024), h-swish, dropout, classifier. BatchNorm eps 1e-3 as torchvision / TF.
  """
  bn_epsilon: float = 1e-3
  layers: Sequence[MobileStage] = V3_LARGE
  head_features: int = 1280
  num_classes: int = 1000
  width_multiplier: float = 1.0
  dropout_rate: float = 0.2

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    width = lambda c: make_divisible(c * self.width_multiplier, 8)
    x = self.stem(x, width(16), train, act=hard_swish)
    # Squeeze-excite to a quarter of the expanded width, rounded to 8, h-sigmoid gate.
    block = functools.partial(InvertedResidual, se_divisor=8, se_gate=hard_sigmoid,
                              conv_block=self.conv_block(), dtype=self.dtype)
    x = self.stages(x, self.layers, train, block=block, act=RE, width=width, se_ratio=0.25)
    x = self.conv_block(act=hard_swish)(6 * x.shape[-1], 1, name="head_conv")(x, train)
    x = jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(self.dtype)
    x = Conv(width(self.head_features), 1, use_bias=True, dtype=self.dtype,
             name="head_fc")(x)
    x = hard_swish(x)
    return ClassifierHead(self.num_classes, self.dropout_rate, dtype=self.dtype,
                          name="head")(x, train)


register("mobilenet_v1", MobileNetV1, family="mobilenet", input_size=224,
         min_input_size=32, paper=PAPER_V1)
register("mobilenet_v2", MobileNetV2, family="mobilenet", input_size=224,
         min_input_size=32, paper=PAPER_V2)
register("mobilenet_v3_large",
         functools.partial(MobileNetV3, layers=V3_LARGE, head_features=1280),
         family="mobilenet", input_size=224, min_input_size=32, paper=PAPER_V3)
register("mobilenet_v3_small",
         functools.partial(MobileNetV3, layers=V3_SMALL, head_features=1024),
         family="mobilenet", input_size=224, min_input_size=32, paper=PAPER_V3)
