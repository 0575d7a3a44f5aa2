"""MobileNet v1 (Howard et al. 2017), v2 (Sandler et al. 2018) and v3 (Howard et al. 2019).

Each version is its paper's layer table as data and one loop over a block from
cnn_jax/layers/mobile.py. Padding is symmetric (k//2, the torchvision convention the
reference parameter counts come from); pass `padding='SAME'` for TF-trained weights.
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
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.layers import (ClassifierHead, Conv, ConvNormAct, DepthwiseSeparable,
                            InvertedResidual, activation, hard_sigmoid, hard_swish,
                            make_divisible)
from cnn_jax.models.registry import register

PAPER_V1 = "Howard et al. 2017, arXiv:1704.04861"
PAPER_V2 = "Sandler et al. 2018, arXiv:1801.04381"
PAPER_V3 = "Howard et al. 2019, arXiv:1905.02244"


def _sow_stages(module: nn.Module, x: jax.Array, index: int, strides: Sequence[int]) -> None:
  """Sows block `index`'s output as 'stageN' (N = log2 of its stride, the stem's 2
  included) when it is the last block at that stride."""
  if index + 1 == len(strides) or strides[index + 1] > 1:
    level = 1 + sum(s > 1 for s in strides[:index + 1])
    module.sow("intermediates", f"stage{level}", x)


# Table 1 of MobileNet v1: (output channels, stride) of the 13 depthwise separable layers
# after the 3x3/2 stem conv with 32 channels.
V1_LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
             (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


class MobileNetV1(nn.Module):
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
  padding: Any = None
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = jnp.float32
  separable: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    act = activation(self.act)
    conv_block = functools.partial(ConvNormAct, act=act, padding=self.padding,
                                   bn_momentum=self.bn_momentum,
                                   bn_epsilon=self.bn_epsilon, dtype=self.dtype)
    width = lambda c: max(int(c * self.width_multiplier), 8)
    x = conv_block(width(32), 3, 2, name="stem_conv")(x, train)
    self.sow("intermediates", "stem", x)
    strides = [s for _, s in V1_LAYERS]
    for i, (features, stride) in enumerate(V1_LAYERS):
      if self.separable:
        x = DepthwiseSeparable(width(features), stride, act=act, conv_block=conv_block,
                               name=f"block{i + 1}")(x, train)
      else:
        x = conv_block(width(features), 3, stride, name=f"block{i + 1}")(x, train)
      _sow_stages(self, x, i, strides)
    return ClassifierHead(self.num_classes, self.dropout_rate, dtype=self.dtype,
                          name="head")(x, train)


# Table 2 of MobileNet v2: (expansion t, output channels c, repeats n, first stride s),
# after the 3x3/2 stem conv with 32 channels; a 1x1 conv to 1280 follows.
V2_LAYERS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2(nn.Module):
  """Inverted residuals with linear bottlenecks, ReLU6, widths divisible by 8 (Sec. 4).

  Fig. 6's ablations, both True in the paper's network and neither changing the
  parameters: `linear_bottleneck=False` puts ReLU6 after every block's 1x1 projection
  (Fig. 6a), `residual=False` removes the shortcuts between bottlenecks (Fig. 6b).
  """
  num_classes: int = 1000
  width_multiplier: float = 1.0
  dropout_rate: float = 0.2  # torchvision / TF-slim classifier dropout
  padding: Any = None
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = jnp.float32
  linear_bottleneck: bool = True
  residual: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv_block = functools.partial(ConvNormAct, act=jax.nn.relu6, padding=self.padding,
                                   bn_momentum=self.bn_momentum,
                                   bn_epsilon=self.bn_epsilon, dtype=self.dtype)
    width = lambda c: make_divisible(c * self.width_multiplier, 8)
    x = conv_block(width(32), 3, 2, name="stem_conv")(x, train)
    self.sow("intermediates", "stem", x)
    blocks = [(t, width(c), s if j == 0 else 1)
              for t, c, n, s in V2_LAYERS for j in range(n)]
    strides = [s for _, _, s in blocks]
    for i, (t, features, stride) in enumerate(blocks):
      # Hidden width t * input channels, unrounded, as in the reference code.
      expanded = int(round(x.shape[-1] * t))
      x = InvertedResidual(features, expanded, 3, stride, act=jax.nn.relu6,
                           conv_block=conv_block, dtype=self.dtype,
                           project_act=None if self.linear_bottleneck else jax.nn.relu6,
                           residual=self.residual, name=f"block{i + 1}")(x, train)
      _sow_stages(self, x, i, strides)
    # The last conv is never thinned below 1280 (Sec. 6.1).
    x = conv_block(max(1280, width(1280)), 1, name="head_conv")(x, train)
    return ClassifierHead(self.num_classes, self.dropout_rate, dtype=self.dtype,
                          name="head")(x, train)


# Tables 1 and 2 of MobileNet v3: (kernel, expanded width, output width, SE, activation,
# stride) per bneck layer, after a 3x3/2 stem conv with 16 channels and h-swish.
V3_LARGE = (
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hard_swish", 2),
    (3, 200, 80, False, "hard_swish", 1),
    (3, 184, 80, False, "hard_swish", 1),
    (3, 184, 80, False, "hard_swish", 1),
    (3, 480, 112, True, "hard_swish", 1),
    (3, 672, 112, True, "hard_swish", 1),
    (5, 672, 160, True, "hard_swish", 2),
    (5, 960, 160, True, "hard_swish", 1),
    (5, 960, 160, True, "hard_swish", 1),
)
V3_SMALL = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hard_swish", 2),
    (5, 240, 40, True, "hard_swish", 1),
    (5, 240, 40, True, "hard_swish", 1),
    (5, 120, 48, True, "hard_swish", 1),
    (5, 144, 48, True, "hard_swish", 1),
    (5, 288, 96, True, "hard_swish", 2),
    (5, 576, 96, True, "hard_swish", 1),
    (5, 576, 96, True, "hard_swish", 1),
)


class MobileNetV3(nn.Module):
  """h-swish, squeeze-excite after the depthwise conv on the expanded width (Sec. 5).

  The head (Sec. 5.1, "efficient last stage"): 1x1 conv-BN-h-swish to 6x the last
  width (960 / 576), global pool, then a 1x1 conv with bias and no BN to `head_features`
  (1280 / 1024), h-swish, dropout, classifier. BatchNorm eps 1e-3 as torchvision / TF.
  """
  layers: Sequence[tuple[int, int, int, bool, str, int]]
  head_features: int
  num_classes: int = 1000
  width_multiplier: float = 1.0
  dropout_rate: float = 0.2
  padding: Any = None
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv_block = functools.partial(ConvNormAct, padding=self.padding,
                                   bn_momentum=self.bn_momentum,
                                   bn_epsilon=self.bn_epsilon, dtype=self.dtype)
    width = lambda c: make_divisible(c * self.width_multiplier, 8)
    x = conv_block(width(16), 3, 2, act=hard_swish, name="stem_conv")(x, train)
    self.sow("intermediates", "stem", x)
    strides = [layer[-1] for layer in self.layers]
    for i, (kernel, expanded, features, se, act, stride) in enumerate(self.layers):
      act_fn = activation(act)
      x = InvertedResidual(
          width(features), width(expanded), kernel, stride, act=act_fn,
          se_ratio=0.25 if se else 0.0, se_divisor=8, se_gate=hard_sigmoid,
          conv_block=functools.partial(conv_block, act=act_fn), dtype=self.dtype,
          name=f"block{i + 1}")(x, train)
      _sow_stages(self, x, i, strides)
    x = conv_block(6 * x.shape[-1], 1, act=hard_swish, name="head_conv")(x, train)
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
