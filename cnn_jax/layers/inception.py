"""Inception blocks (Szegedy et al. 2014, 2015, 2016; Ioffe & Szegedy 2015), written once.

An Inception block is data in the step language of cnn_jax/layers/steps.py: a
`MixedSpec` (parallel branches of steps, concatenated) or a `ResidualSpec`
(Inception-ResNet), run by `apply_step`. The paper-figure builders here
(`googlenet_module`, `bn_inception_module`, `factorised_5x5`, `asymmetric_nxn`,
`expanded_split`, `grid_reduction`, `inception_reduction_a`) return such data; the
models in cnn_jax/models/inception.py only write the papers' tables with them.

`AuxClassifier` is the auxiliary head of GoogLeNet (Section 5) and Inception v3
(Section 4, with BN).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.layers.pooling import adaptive_avg_pool, avg_pool
from cnn_jax.layers.steps import (Branch, ConvSpec, MixedSpec, apply_step, avg_pool_step,
                                  conv, max_pool_step, scaled_width, with_width_multiplier)

Dtype = Any


@dataclasses.dataclass(frozen=True)
class AuxSpec:
  """An auxiliary classifier: pool to `grid` x `grid`, convs, [FC `hidden` + ReLU], FC.

  The pooling is the paper's `pool_window`/`pool_stride` average pooling whenever that
  gives exactly `grid` x `grid` (the paper's resolution); at other input sizes it is an
  adaptive average pooling to `grid` x `grid` (torchvision's approach), so the head's
  parameter shapes never depend on the input size. `pool_window=None`: always adaptive.
  """
  grid: int
  pool_window: int | None = 5
  pool_stride: int = 3
  convs: tuple[ConvSpec, ...] = (ConvSpec(128, 1),)
  hidden: int = 0
  dropout_rate: float = 0.0

  def scaled(self, multiplier: float) -> AuxSpec:
    """This head with its convs and its hidden FC scaled by `multiplier` (as
    `with_width_multiplier` scales the layout). 1.0 returns the head itself."""
    if multiplier == 1.0:
      return self
    return dataclasses.replace(
        self, convs=tuple(with_width_multiplier(c, multiplier) for c in self.convs),
        hidden=scaled_width(self.hidden, multiplier) if self.hidden else 0)


# ---------------------------------------------------------------------------------------
# Builders: the papers' figures as branch data.

def googlenet_module(n1x1: int, n3x3_reduce: int, n3x3: int, n5x5_reduce: int, n5x5: int,
                     pool_proj: int, kernel_5x5: int = 5) -> MixedSpec:
  """GoogLeNet's Inception module with dimension reductions (Szegedy et al. 2014, Fig. 2b).

  The arguments are a row of Table 1. `kernel_5x5=3` is torchvision's layout, whose
  "5x5" branch is a 3x3 conv (a known deviation kept for its weights).
  """
  return MixedSpec((
      (conv(n1x1),),
      (conv(n3x3_reduce), conv(n3x3, 3)),
      (conv(n5x5_reduce), conv(n5x5, kernel_5x5)),
      (max_pool_step(3, 1, 1), conv(pool_proj)),
  ))


def factorised_5x5(reduce: int, width: int, stride: int = 1) -> Branch:
  """A 5x5 conv factorised into two 3x3 convs after a 1x1 reduction.

  Ioffe & Szegedy 2015 (Section 4.1, "double 3x3") and Szegedy et al. 2015b (Figs. 1, 5).
  `stride` goes on the second 3x3, as in BN-Inception's stride-2 modules.
  """
  return (conv(reduce), conv(width, 3), conv(width, 3, stride))


def asymmetric_nxn(reduce: int, widths: Sequence[int], n: int = 7,
                   first: str = "1xn") -> Branch:
  """An n x n conv factorised into alternating 1 x n and n x 1 convs after a 1x1 reduction.

  Szegedy et al. 2015b, Section 3.2 and Fig. 6 (n = 7 on the 17x17 grid); one 1xn + nx1
  pair per n x n. `first` is the orientation of the first asymmetric conv.
  """
  row, col = (1, n), (n, 1)
  kernels = (row, col) if first == "1xn" else (col, row)
  return (conv(reduce),) + tuple(conv(w, kernels[i % 2]) for i, w in enumerate(widths))


def expanded_split(width: int, first: str = "1xn", n: int = 3) -> MixedSpec:
  """The expanded filter bank of the coarsest grid: a 1xn and an nx1 conv side by side
  over the same input, concatenated (Szegedy et al. 2015b, Fig. 7; 2016, Figs. 6 and 19)."""
  row, col = conv(width, (1, n)), conv(width, (n, 1))
  return MixedSpec(((row,), (col,)) if first == "1xn" else ((col,), (row,)))


def grid_reduction(*branches: Branch, pool_padding: int = 0,
                   pool_first: bool = False) -> MixedSpec:
  """Grid-size reduction: stride-2 conv branches beside a 3x3/2 max-pool pass-through,
  concatenated (Szegedy et al. 2015b, Section 5 and Fig. 10), so the width grows while
  the grid halves without a representational bottleneck. The branches carry their own
  strides and padding: VALID in v3 / v4 / Inception-ResNet; padding 1 in BN-Inception
  (TF 'SAME'), whose pool then pads 1 as well (`pool_padding`)."""
  pool = (max_pool_step(3, 2, pool_padding),)
  return MixedSpec((pool,) + tuple(branches) if pool_first else tuple(branches) + (pool,))


def inception_reduction_a(k: int, l: int, m: int, n: int) -> MixedSpec:
  """Reduction-A of Inception-v4 and Inception-ResNet (Szegedy et al. 2016, Fig. 7):
  35x35 -> 17x17. (k, l, m, n) are Table 1: v4 (192, 224, 256, 384), Inception-ResNet-v1
  (192, 192, 256, 384), Inception-ResNet-v2 (256, 256, 384, 384)."""
  return grid_reduction(
      (conv(n, 3, 2, padding=0),),
      (conv(k), conv(l, 3), conv(m, 3, 2, padding=0)))


def bn_inception_module(n1x1: int, n3x3_reduce: int, n3x3: int, d3x3_reduce: int,
                        d3x3: int, pool: str, pool_proj: int, stride: int = 1) -> MixedSpec:
  """A row of BN-Inception's Figure 5 (Ioffe & Szegedy 2015): GoogLeNet's module with the
  5x5 branch replaced by two 3x3 convs and avg or max pooling in the pool branch.

  A stride-2 module (3c, 4e) has no 1x1 branch, puts the stride on the last conv of each
  3x3 branch and passes the max-pooled input through with no projection.
  """
  if stride == 1:
    return MixedSpec((
        (conv(n1x1),),
        (conv(n3x3_reduce), conv(n3x3, 3)),
        factorised_5x5(d3x3_reduce, d3x3),
        ((max_pool_step(3, 1, 1) if pool == "max" else avg_pool_step(3, 1, 1, False)),
         conv(pool_proj)),
    ))
  if n1x1 or pool != "max" or pool_proj:
    raise ValueError("a stride-2 BN-Inception module has no 1x1 branch and passes the "
                     "max-pooled input through: use n1x1=0, pool='max', pool_proj=0")
  return grid_reduction(
      (conv(n3x3_reduce), conv(n3x3, 3, stride)),
      factorised_5x5(d3x3_reduce, d3x3, stride=stride), pool_padding=1)


# ---------------------------------------------------------------------------------------
# The auxiliary head.

class AuxClassifier(nn.Module):
  """Auxiliary classifier on an intermediate map (see `AuxSpec`).

  GoogLeNet (Section 5): 5x5/3 average pool (4x4 at 4a/4d), 1x1 conv 128 + ReLU, FC 1024
  + ReLU, dropout 0.7, FC. Inception v3 (Section 4 and torchvision): 5x5/3 average pool
  (5x5 at 17x17), 1x1 conv 128, 5x5 VALID conv 768, both with BN, FC.
  """
  num_classes: int
  spec: AuxSpec
  conv_block: Callable
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    s = self.spec
    h, w = x.shape[1:3]
    out = lambda n: (n - s.pool_window) // s.pool_stride + 1 if n >= s.pool_window else 0
    if s.pool_window is not None and out(h) == out(w) == s.grid:
      x = avg_pool(x, s.pool_window, s.pool_stride)
    else:
      x = adaptive_avg_pool(x, s.grid)
    for i, c in enumerate(s.convs):
      x = apply_step(c, x, train, self.conv_block, f"conv{i}", self.dtype)
    x = x.reshape(x.shape[0], math.prod(x.shape[1:]))
    if s.hidden:
      x = nn.relu(nn.Dense(s.hidden, dtype=self.dtype, param_dtype=jnp.float32, name="fc1")(x))
    if s.dropout_rate:
      x = nn.Dropout(s.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=jnp.float32,
                    name="fc")(x)
