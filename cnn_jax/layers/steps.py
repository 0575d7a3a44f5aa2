"""The step language: a network's layers as typed data, run by one interpreter.

The classic nets (AlexNet, ZFNet, VGG: cnn_jax/models/classic.py) and the Inception
family (cnn_jax/models/inception.py) both write their papers' tables as sequences of
*steps*. A step is one of

  `ConvSpec`      the model's conv block (conv+BN+ReLU, or conv+bias+ReLU for the
                  pre-BN nets), any kernel shape (1x7, 7x1, ...), stride, padding and
                  groups (AlexNet's two towers); or a linear depthwise conv (the first
                  half of a separable conv, BN-Inception)
  `PoolSpec`      max or average pooling with the framework's padding / ceil conventions
  `LRNSpec`       local normalisation across channels: AlexNet's LRN, or ZFNet's contrast
                  normalisation (`subtract_mean=True`)
  `MixedSpec`     parallel *branches* (each a tuple of steps run in order) over one input,
                  concatenated along channels (an Inception module, or the 1x3 / 3x1
                  split of an expanded filter bank, Szegedy et al. 2015b Fig. 7)
  `ResidualSpec`  an Inception-ResNet block: branches -> linear 1x1 projection back to the
                  input width -> x + scale * projection -> ReLU (Szegedy et al. 2016)

and `apply_step` runs any of them inside a model's `@nn.compact` method, with the conv
block the model injects. `conv`, `max_pool_step` and `avg_pool_step` are short
constructors for tables; `with_width_multiplier`, `with_avg_pool_rule` and
`without_paper_bias` rewrite a step (nested branches included) for the models' fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.layers.classic import local_contrast_norm, local_response_norm
from cnn_jax.layers.conv import Conv, PaddingLike
from cnn_jax.layers.pooling import avg_pool, max_pool

Dtype = Any


@dataclasses.dataclass(frozen=True)
class ConvSpec:
  """A conv step; `padding=None` is symmetric k//2 per dimension, 0 is 'VALID'.

  `groups=2` is AlexNet's two towers (each half of the outputs sees its own half of the
  inputs). `paper_bias` is the initial bias when the model uses its paper's
  initialisation (AlexNet Section 5: 1 for conv2/4/5); otherwise the bias starts at 0.

  `depth_multiplier > 0` makes it a depthwise conv with `in_channels * depth_multiplier`
  outputs and no bias, norm or activation: the first half of a separable convolution
  (TF-slim's `separable_conv2d`, whose BN and ReLU follow the pointwise conv only).
  """
  features: int = 0
  kernel: int | tuple[int, int] = 1
  stride: int = 1
  padding: PaddingLike = None
  groups: int = 1
  paper_bias: float = 0.0
  depth_multiplier: int = 0


@dataclasses.dataclass(frozen=True)
class PoolSpec:
  """A pooling step. `padding` is symmetric pixels; `ceil_mode` rounds the output size up
  as Caffe did (GoogLeNet, ZFNet); `count_include_pad=False` is TF's (and timm's) average
  pooling, which divides by the valid pixels of a padded window only."""
  kind: str = "max"  # max | avg
  window: int = 3
  stride: int = 2
  padding: int = 0
  ceil_mode: bool = False
  count_include_pad: bool = True


@dataclasses.dataclass(frozen=True)
class LRNSpec:
  """Local normalisation across channels, in `local_response_norm`'s convention.

  The defaults are AlexNet's constants (Krizhevsky et al. 2012, Section 3.3: n=5,
  alpha=1e-4, beta=0.75, k=2), which VGG's A-LRN reuses. `subtract_mean=True` is
  `local_contrast_norm` (ZFNet's contrast normalisation across feature maps). Caffe
  divides alpha by the window size, so a Caffe model's alpha is `size * alpha` here.
  """
  size: int = 5
  alpha: float = 1e-4
  beta: float = 0.75
  k: float = 2.0
  subtract_mean: bool = False


Step = Union[ConvSpec, PoolSpec, LRNSpec, "MixedSpec", "ResidualSpec"]
Branch = tuple  # tuple[Step, ...]


@dataclasses.dataclass(frozen=True)
class MixedSpec:
  """Parallel branches over one input, concatenated along channels (an Inception module)."""
  branches: tuple[Branch, ...]


@dataclasses.dataclass(frozen=True)
class ResidualSpec:
  """An Inception-ResNet block (Szegedy et al. 2016, Figs. 10-13 and 16-19).

  The concatenated branches go through a 1x1 conv "without activation" (with bias, no BN,
  as in the authors' TF-slim code) back to the input width; the result is multiplied by
  `scale` (Section 3.3: 0.1-0.3 stabilises training) and added to the input, then ReLU
  unless `activate=False` (the last block of TF-slim's Inception-ResNet v2).
  """
  branches: tuple[Branch, ...]
  scale: float = 1.0
  activate: bool = True


# ---------------------------------------------------------------------------------------
# Short constructors for tables.

def conv(features: int, kernel: int | tuple[int, int] = 1, stride: int = 1,
         padding: PaddingLike = None) -> ConvSpec:
  return ConvSpec(features, kernel, stride, padding)


def max_pool_step(window: int = 3, stride: int = 2, padding: int = 0,
                  ceil_mode: bool = False) -> PoolSpec:
  return PoolSpec("max", window, stride, padding, ceil_mode)


def avg_pool_step(window: int = 3, stride: int = 1, padding: int = 1,
                  count_include_pad: bool = True) -> PoolSpec:
  return PoolSpec("avg", window, stride, padding, False, count_include_pad)


# ---------------------------------------------------------------------------------------
# Rewrites for the models' ablation fields.

def _map_leaves(step: Step, fn: Callable[[Step], Step]) -> Step:
  """`step` with `fn` applied to every conv, pool and normalisation step inside it."""
  if isinstance(step, (MixedSpec, ResidualSpec)):
    branches = tuple(tuple(_map_leaves(s, fn) for s in branch) for branch in step.branches)
    return dataclasses.replace(step, branches=branches)
  return fn(step)


def with_avg_pool_rule(step: Step, count_include_pad: bool) -> Step:
  """`step` with every average pool inside it (nested branches included) dividing by the
  full window (`count_include_pad=True`, PyTorch) or by the valid pixels only (False, TF
  and Keras 'SAME' pooling). The same network in either framework's convention."""
  def rule(s):
    if isinstance(s, PoolSpec) and s.kind == "avg":
      return dataclasses.replace(s, count_include_pad=count_include_pad)
    return s
  return _map_leaves(step, rule)


def scaled_width(features: int, multiplier: float) -> int:
  """`features` x `multiplier`, rounded, at least 1."""
  return max(1, round(features * multiplier))


def with_width_multiplier(step: Step, multiplier: float) -> Step:
  """`step` with every conv width inside it (nested branches included) scaled by
  `multiplier` (`scaled_width`), for the CPU-scale studies.

  A depthwise conv keeps its `depth_multiplier` (its width follows its input), and a
  `ResidualSpec`'s projection back to the input width is built from the input, so a
  scaled Inception-ResNet block still adds matching shapes. 1.0 returns `step` itself.
  """
  if multiplier == 1.0:
    return step
  def scale(s):
    if isinstance(s, ConvSpec) and not s.depth_multiplier:
      return dataclasses.replace(s, features=scaled_width(s.features, multiplier))
    return s
  return _map_leaves(step, scale)


def without_paper_bias(step: Step) -> Step:
  """`step` with every conv bias inside it starting at 0 (a model not initialised as its
  paper was: `paper_bias` belongs to the paper's initialisation)."""
  def zero(s):
    return dataclasses.replace(s, paper_bias=0.0) if isinstance(s, ConvSpec) else s
  return _map_leaves(step, zero)


# ---------------------------------------------------------------------------------------
# The interpreter.

def _pool(x: jax.Array, spec: PoolSpec) -> jax.Array:
  if spec.kind == "max":
    return max_pool(x, spec.window, spec.stride, spec.padding, spec.ceil_mode)
  if spec.kind == "avg":
    return avg_pool(x, spec.window, spec.stride, spec.padding, spec.ceil_mode,
                    spec.count_include_pad)
  raise ValueError(f"unknown pool kind {spec.kind!r}; choose max or avg")


def apply_step(step: Step, x: jax.Array, train: bool, conv_block: Callable, name: str,
               dtype: Dtype = jnp.float32) -> jax.Array:
  """Runs one step; call it inside a module's `@nn.compact` method, which owns the new
  submodule `name` (a conv, an `InceptionModule` or an `InceptionResidual`).

  `conv_block(features, kernel, stride, padding, groups=, bias_init=, name=)` builds a
  conv step's module (`ConvNormAct` with the model's norm, activation and kernel init);
  its bias, if it has one, starts at the step's `paper_bias`.
  """
  if isinstance(step, ConvSpec):
    if step.depth_multiplier:
      c = x.shape[-1]
      return Conv(c * step.depth_multiplier, step.kernel, step.stride, step.padding,
                  groups=c, dtype=dtype, name=name)(x)
    return conv_block(step.features, step.kernel, step.stride, step.padding,
                      groups=step.groups, bias_init=nn.initializers.constant(step.paper_bias),
                      name=name)(x, train)
  if isinstance(step, PoolSpec):
    return _pool(x, step)
  if isinstance(step, LRNSpec):
    norm = local_contrast_norm if step.subtract_mean else local_response_norm
    return norm(x, step.size, step.alpha, step.beta, step.k)
  if isinstance(step, MixedSpec):
    return InceptionModule(step.branches, conv_block, dtype, name=name)(x, train)
  if isinstance(step, ResidualSpec):
    return InceptionResidual(step.branches, conv_block, step.scale, step.activate, dtype,
                             name=name)(x, train)
  raise TypeError(f"not a step: {step!r}")


class InceptionModule(nn.Module):
  """Branches over the same input, concatenated along channels (all Inception versions).

  Submodules are named `branch{i}_{j}` (branch i, step j), a nested split `branch{i}_{j}`
  as well; pooling and normalisation steps have no parameters.
  """
  branches: tuple[Branch, ...]
  conv_block: Callable
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    outs = []
    for i, branch in enumerate(self.branches):
      y = x
      for j, step in enumerate(branch):
        y = apply_step(step, y, train, self.conv_block, f"branch{i}_{j}", self.dtype)
      outs.append(y)
    return jnp.concatenate(outs, axis=-1)


class InceptionResidual(nn.Module):
  """x + scale * proj(concat(branches(x))), then ReLU (see `ResidualSpec`)."""
  branches: tuple[Branch, ...]
  conv_block: Callable
  scale: float = 1.0
  activate: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    y = InceptionModule(self.branches, self.conv_block, self.dtype, name="branches")(x, train)
    y = Conv(x.shape[-1], 1, use_bias=True, dtype=self.dtype, name="proj")(y)
    x = x + self.scale * y
    return nn.relu(x) if self.activate else x
