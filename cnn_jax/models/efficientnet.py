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

import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.layers import ClassifierHead, ConvNormAct, InvertedResidual, make_divisible
from cnn_jax.models.registry import register


@dataclasses.dataclass(frozen=True)
class MBConvStage:
  """One row of Table 1: expansion, kernel, stride of the first block, output width, repeats."""
  expand_ratio: int
  kernel_size: int
  strides: int
  features: int
  repeats: int


# Table 1 of the paper (EfficientNet-B0), stages 2-8 between the 3x3/2 stem conv with 32
# channels and the 1x1 conv to 1280.
B0_STAGES = (
    MBConvStage(1, 3, 1, 16, 1),
    MBConvStage(6, 3, 2, 24, 2),
    MBConvStage(6, 5, 2, 40, 2),
    MBConvStage(6, 3, 2, 80, 3),
    MBConvStage(6, 5, 1, 112, 3),
    MBConvStage(6, 5, 2, 192, 4),
    MBConvStage(6, 3, 1, 320, 1),
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


class EfficientNet(nn.Module):
  width_coefficient: float = 1.0
  depth_coefficient: float = 1.0
  num_classes: int = 1000
  dropout_rate: float = 0.2
  drop_path_rate: float = 0.2  # stochastic depth "survival probability 0.8" (Sec. 5.2)
  se_ratio: float = 0.25
  padding: Any = None
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv_block = functools.partial(ConvNormAct, act=nn.silu, padding=self.padding,
                                   bn_momentum=self.bn_momentum,
                                   bn_epsilon=self.bn_epsilon, dtype=self.dtype)
    width = functools.partial(round_filters, width_coefficient=self.width_coefficient)
    x = conv_block(width(B0_STEM), 3, 2, name="stem_conv")(x, train)
    self.sow("intermediates", "stem", x)
    blocks = [(stage, j == 0)
              for stage in B0_STAGES
              for j in range(round_repeats(stage.repeats, self.depth_coefficient))]
    strides = [stage.strides if first else 1 for stage, first in blocks]
    for i, (stage, first) in enumerate(blocks):
      in_features = x.shape[-1]
      x = InvertedResidual(
          width(stage.features), in_features * stage.expand_ratio, stage.kernel_size,
          strides[i], act=nn.silu, se_ratio=self.se_ratio, se_from_input=True,
          se_act=nn.silu, se_gate=nn.sigmoid,
          drop_path_rate=self.drop_path_rate * i / len(blocks),
          conv_block=conv_block, dtype=self.dtype, name=f"block{i + 1}")(x, train)
      if i + 1 == len(blocks) or strides[i + 1] > 1:  # last block at this stride
        self.sow("intermediates", f"stage{1 + sum(s > 1 for s in strides[:i + 1])}", x)
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
