"""Blocks of the efficient families: MobileNet v1/v2/v3 and EfficientNet.

Depthwise separable convolution (Howard et al. 2017, Fig. 3), the inverted residual with a
linear bottleneck (Sandler et al. 2018, Table 1) and the channel rounding of their
reference code. The inverted residual uses squeeze-and-excitation (squeeze_excite.py),
stochastic depth (drop.py) and the named activations (activations.py).

Every block takes a `conv_block` factory (ConvNormAct by default), so a model sets the
compute dtype, the BatchNorm epsilon / momentum or the padding once, for all its convs.

The four networks are each a layer table of the paper: `MobileStage` is one row of such a
table, and `MobileNetBase` the fields and the loop they share (stem, the table's blocks
named `block1`..`blockN`, the 'stem' / 'stageN' intermediates).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.layers.conv import ConvNormAct, PaddingLike
from cnn_jax.layers.drop import DropPath
from cnn_jax.layers.squeeze_excite import SqueezeExcite

Dtype = Any


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None,
                   round_limit: float = 0.9) -> int:
  """Rounds a channel count to the nearest multiple of `divisor`, never below 90% of it.

  The rule of the MobileNet v2 / v3 and EfficientNet reference code (TF `_make_divisible`,
  EfficientNet `round_filters`): hardware prefers multiples of 8, and rounding down by
  more than 10% would cost accuracy, so such a result moves up one multiple.
  """
  min_value = min_value or divisor
  rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
  if rounded < round_limit * value:
    rounded += divisor
  return rounded


class DepthwiseSeparable(nn.Module):
  """3x3 depthwise conv-BN-act, then 1x1 pointwise conv-BN-act (MobileNet v1, Fig. 3)."""
  features: int
  strides: int = 1
  kernel_size: int = 3
  act: Callable = nn.relu
  conv_block: Callable = ConvNormAct

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = self.conv_block(x.shape[-1], self.kernel_size, self.strides, groups=x.shape[-1],
                        act=self.act, name="depthwise")(x, train)
    return self.conv_block(self.features, 1, act=self.act, name="pointwise")(x, train)


class InvertedResidual(nn.Module):
  """Expand 1x1 -> depthwise kxk -> [squeeze-excite] -> project 1x1 (linear), + shortcut.

  MobileNet v2 (Sandler et al. 2018, Table 1), MobileNet v3 (Howard et al. 2019, Fig. 4)
  and EfficientNet's MBConv (Tan & Le 2019, after Tan et al. 2019's MnasNet) are all this
  block. `expanded_features` equal to the input width means no expansion conv (the first
  block of v2 and EfficientNet, t=1). The squeeze-excite width is `se_ratio` of the input
  width (`se_from_input`, EfficientNet) or of the expanded width (MobileNet v3), rounded
  with make_divisible(., se_divisor) when `se_divisor` > 1 and floored otherwise. The
  shortcut exists when stride is 1 and the width is unchanged; `drop_path_rate` applies
  stochastic depth to the branch.

  Ablations of Sandler et al. 2018, Fig. 6 (neither changes the parameters):
  `project_act` None is the linear bottleneck (Sec. 3.2); an activation after the
  projection is Fig. 6a's non-linear bottleneck. `residual=False` drops the shortcut
  (Fig. 6b's "no residual"; the default is its shortcut between bottlenecks).
  """
  features: int
  expanded_features: int
  kernel_size: int = 3
  strides: int = 1
  act: Callable = jax.nn.relu6
  se_ratio: float = 0.0
  se_from_input: bool = False
  se_divisor: int = 1
  se_act: Callable = nn.relu
  se_gate: Callable = nn.sigmoid
  drop_path_rate: float = 0.0
  conv_block: Callable = ConvNormAct
  dtype: Dtype = jnp.float32
  project_act: Callable | None = None
  residual: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    in_features = x.shape[-1]
    y = x
    if self.expanded_features != in_features:
      y = self.conv_block(self.expanded_features, 1, act=self.act, name="expand")(y, train)
    y = self.conv_block(self.expanded_features, self.kernel_size, self.strides,
                        groups=self.expanded_features, act=self.act, name="depthwise")(y, train)
    if self.se_ratio:
      base = in_features if self.se_from_input else self.expanded_features
      if self.se_divisor > 1:
        squeeze = make_divisible(base * self.se_ratio, self.se_divisor)
      else:
        squeeze = max(1, int(base * self.se_ratio))
      y = SqueezeExcite(squeeze, act=self.se_act, gate=self.se_gate, dtype=self.dtype,
                        name="se")(y)
    y = self.conv_block(self.features, 1, act=self.project_act, name="project")(y, train)
    if self.residual and self.strides == 1 and in_features == self.features:
      y = DropPath(self.drop_path_rate, name="drop_path")(y, deterministic=not train) + x
    return y


@dataclasses.dataclass(frozen=True)
class MobileStage:
  """One row of a MobileNet / EfficientNet layer table: `repeats` blocks of one kind, the
  first with stride `strides`, the others with stride 1.

  An inverted residual has its hidden width as `expansion` t, a multiple of the block's
  input width (MobileNet v2 Table 2, EfficientNet Table 1), or as `hidden`, the width
  itself, scaled like `features` (MobileNet v3's "exp size"); a row with neither is a
  depthwise separable layer (MobileNet v1). `se` adds squeeze-excite; `act` is the row's
  activation (MobileNet v3's NL column), None for the network's.
  """
  kernel_size: int
  features: int
  repeats: int = 1
  strides: int = 1
  expansion: float | None = None
  hidden: int | None = None
  se: bool = False
  act: Callable | None = None

  @property
  def inverted_residual(self) -> bool:
    return self.expansion is not None or self.hidden is not None


def stage_blocks(rows: Sequence[MobileStage],
                 repeats: Callable[[int], int] = lambda n: n) -> list[tuple[MobileStage, int]]:
  """(row, stride) of every block of the table, each row's repeats scaled by `repeats`."""
  return [(row, row.strides if j == 0 else 1)
          for row in rows for j in range(repeats(row.repeats))]


class MobileNetBase(nn.Module):
  """What MobileNet v1-v3 and EfficientNet share: the conv-BN settings of all their convs
  and the loop over their layer table. Subclasses write `__call__` with `stem`, `stages`
  and their head.
  """
  padding: PaddingLike = None
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Dtype = jnp.float32

  def conv_block(self, **overrides: Any) -> Callable[..., ConvNormAct]:
    """ConvNormAct with this network's padding, BatchNorm settings and dtype."""
    return functools.partial(ConvNormAct, padding=self.padding,
                             bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
                             dtype=self.dtype, **overrides)

  def stem(self, x: jax.Array, features: int, train: bool, **overrides: Any) -> jax.Array:
    """The 3x3 stride-2 conv-BN-act `stem_conv`; sows its output as 'stem'."""
    x = self.conv_block(**overrides)(features, 3, 2, name="stem_conv")(x, train)
    self.sow("intermediates", "stem", x)
    return x

  def stages(self, x: jax.Array, rows: Sequence[MobileStage], train: bool, *,
             block: Callable[..., nn.Module], act: Callable,
             width: Callable[[float], int], repeats: Callable[[int], int] = lambda n: n,
             se_ratio: float = 0.25, drop_path_rate: float = 0.0) -> jax.Array:
    """Runs the table's blocks, `block1`..`blockN`, and sows 'stageN', the last map at
    stride 2**N (the stem's 2 included; a new stage starts at every stride-2 block).

    `block(features, kernel_size=, strides=, act=, name=)` builds one block; an inverted
    residual row also passes `expanded_features`, `se_ratio` (0 without `se`) and
    `drop_path_rate`, which rises linearly from 0 at the first block (EfficientNet).
    `width` rounds a scaled width, `repeats` a row's scaled depth.
    """
    blocks = stage_blocks(rows, repeats)
    for i, (row, stride) in enumerate(blocks):
      extra = {}
      if row.inverted_residual:
        hidden = (int(round(x.shape[-1] * row.expansion)) if row.expansion is not None
                  else width(row.hidden))  # t * input width unrounded, as the reference
        extra = dict(expanded_features=hidden, se_ratio=se_ratio if row.se else 0.0,
                     drop_path_rate=drop_path_rate * i / len(blocks))
      x = block(width(row.features), kernel_size=row.kernel_size, strides=stride,
                act=row.act or act, name=f"block{i + 1}", **extra)(x, train)
      if i + 1 == len(blocks) or blocks[i + 1][1] > 1:  # the last block at this stride
        self.sow("intermediates", f"stage{1 + sum(s > 1 for _, s in blocks[:i + 1])}", x)
    return x
