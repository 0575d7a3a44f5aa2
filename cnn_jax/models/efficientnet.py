"""EfficientNet B0-B7 (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for CNNs").

B0 is Table 1 of the paper, written once as data. B1-B7 are derived from it in code by
compound scaling (Sec. 3.3): every width is multiplied by the width coefficient and
rounded with `round_filters` (multiples of 8, never below 90%), every stage's repeats by
the depth coefficient and rounded up. The per-variant coefficients (width, depth,
resolution, dropout) are the reference implementation's table (`efficientnet_params` in
tensorflow/tpu's efficientnet_builder.py; also torchvision's), since the paper's
alpha=1.2, beta=1.1, gamma=1.15 raised to phi were rounded by hand there.

MBConv blocks use SiLU (swish), squeeze-excite squeezing the block *input* width by 0.25
(SiLU then sigmoid), and stochastic depth whose drop rate rises linearly with the block
index to 0.2 (the rule of the reference code and torchvision: block b of N drops with
0.2 * b / N). Intermediates: 'stem', 'stageN' = last map at stride 2**N, 'pre_logits'.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax

from cnn_jax.layers import ClassifierHead
from cnn_jax.layers.mobile import (InvertedResidual, MobileNetBase, MobileStage,
                                   make_divisible)
from cnn_jax.models.registry import register

# Table 1 of the paper (EfficientNet-B0), stages 2-8 between the 3x3/2 stem conv with 32
# channels and the 1x1 conv to 1280: MBConv<t>, k<kernel>, #channels, #layers, and the
# stride of each stage's first block (the resolution column). Every MBConv has SE.
B0_STAGES = (
    MobileStage(kernel_size=3, expansion=1, features=16,  repeats=1, strides=1, se=True),
    MobileStage(kernel_size=3, expansion=6, features=24,  repeats=2, strides=2, se=True),
    MobileStage(kernel_size=5, expansion=6, features=40,  repeats=2, strides=2, se=True),
    MobileStage(kernel_size=3, expansion=6, features=80,  repeats=3, strides=2, se=True),
    MobileStage(kernel_size=5, expansion=6, features=112, repeats=3, strides=1, se=True),
    MobileStage(kernel_size=5, expansion=6, features=192, repeats=4, strides=2, se=True),
    MobileStage(kernel_size=3, expansion=6, features=320, repeats=1, strides=1, se=True),
)
B0_STEM, B0_HEAD = 32, 1280

# (width coefficient, depth coefficient, resolution, dropout) per variant.
COMPOUND_SCALING = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}


def round_filters(features: int, width_coefficient: float) -> int:
  """Scales a width and rounds it to a multiple of 8, never more than 10% down."""
  return make_divisible(features * width_coefficient, 8)


def round_repeats(repeats: int, depth_coefficient: float) -> int:
  return int(math.ceil(depth_coefficient * repeats))


class EfficientNet(MobileNetBase):
  width_coefficient: float = 1.0
  depth_coefficient: float = 1.0
  num_classes: int = 1000
  dropout_rate: float = 0.2
  drop_path_rate: float = 0.2  # stochastic depth "survival probability 0.8" (Sec. 5.2)
  se_ratio: float = 0.25

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv_block = self.conv_block(act=nn.silu)
    width = functools.partial(round_filters, width_coefficient=self.width_coefficient)
    x = self.stem(x, width(B0_STEM), train, act=nn.silu)
    block = functools.partial(InvertedResidual, se_from_input=True, se_act=nn.silu,
                              se_gate=nn.sigmoid, conv_block=conv_block, dtype=self.dtype)
    x = self.stages(
        x, B0_STAGES, train, block=block, act=nn.silu, width=width,
        repeats=functools.partial(round_repeats, depth_coefficient=self.depth_coefficient),
        se_ratio=self.se_ratio, drop_path_rate=self.drop_path_rate)
    x = conv_block(width(B0_HEAD), 1, name="head_conv")(x, train)
    return ClassifierHead(self.num_classes, self.dropout_rate, dtype=self.dtype,
                          name="head")(x, train)


for _variant, (_width, _depth, _resolution, _dropout) in COMPOUND_SCALING.items():
  register(
      f"efficientnet_{_variant}",
      functools.partial(
          EfficientNet, width_coefficient=_width, depth_coefficient=_depth,
          dropout_rate=_dropout,
          # torchvision's B5-B7 ports of the TF weights keep TF's BatchNorm eps 1e-3.
          bn_epsilon=1e-3 if _variant in ("b5", "b6", "b7") else 1e-5),
      family="efficientnet", input_size=_resolution, min_input_size=32,
      crop_fraction=_resolution / (_resolution + 32),  # the reference eval crop
      interpolation="bicubic", paper="Tan & Le 2019, arXiv:1905.11946")
