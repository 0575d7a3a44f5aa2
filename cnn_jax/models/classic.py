"""AlexNet, ZFNet and VGG: convolutions with ReLU, normalisation and max-pooling, then fc6-fc8.

Papers: Krizhevsky, Sutskever & Hinton 2012 (AlexNet); Zeiler & Fergus 2013,
arXiv:1311.2901 (ZFNet); Simonyan & Zisserman 2014, arXiv:1409.1556 (VGG).

Each network is one list of layers, read from the paper's figure or table in the step
language of cnn_jax/layers/steps.py (shared with the Inception family), wired by one loop
in `ClassicNet`. VGG's configurations A..E are Table 1 column by column.

Input sizes: the FC layers fix the training crop (227 for AlexNet, 224 otherwise;
`min_input_size` in the registry is the smallest input whose last map still covers fc6).
Larger inputs need `dense_eval=True` (the FC layers slide as convolutions and the class
scores are averaged, VGG Section 3.2); smaller ones need a different head, e.g. the
`fc_window=1` the tests use on 32-67 px inputs.

Ablation field: `act='tanh'` swaps ReLU for tanh after every conv and fc6/fc7 (AlexNet
Section 3.1, Fig. 1), same parameters; the default 'relu' is every paper's network.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.layers import ConvNormAct, FullyConnectedClassifier, activation, classic_kernel_init
from cnn_jax.layers.steps import (ConvSpec, LRNSpec, PoolSpec, Step, apply_step, max_pool_step,
                                  with_width_multiplier, without_paper_bias)
from cnn_jax.models.registry import register

LRN = LRNSpec()                              # AlexNet's LRN and constants (Section 3.3)
CONTRAST_NORM = LRNSpec(subtract_mean=True)  # ZFNet's contrast normalisation (Figure 3)


class ClassicNet(nn.Module):
  """Runs `layers` (steps of cnn_jax/layers/steps.py) in order, then
  `FullyConnectedClassifier`.

  Convs are named conv1, conv2, ... in order. Each pool ends a stage: its output is sown
  as 'stage1', 'stage2', ...
  `batch_norm` adds BatchNorm between each conv (keeping its bias) and its ReLU, as
  torchvision's vgg*_bn. `weight_init` (not `init`: that is Flax's method) is one of
  'paper' | 'glorot' | 'he' (`cnn_jax.layers.classic.classic_kernel_init`); biases are 0
  except each conv's `paper_bias` and `fc_hidden_bias` under 'paper'.

  `width_multiplier` scales every conv's `features` (rounded, at least 1), for CPU-scale
  ablation studies; the FC widths are `fc_features`. The default 1.0 is the paper's net.

  `act` is the nonlinearity after every conv and after fc6/fc7: 'relu' in all three
  papers; 'tanh' is the saturating unit AlexNet's Fig. 1 compares it with (Krizhevsky et
  al. 2012, Section 3.1: ReLUs reach 25% CIFAR-10 training error six times faster). Any
  name of `cnn_jax.layers.ACTIVATIONS` is accepted; none changes the parameters.
  """
  layers: Sequence[Step]
  num_classes: int = 1000
  fc_window: int = 7               # side of the last map that fc6 covers
  fc_features: Sequence[int] = (4096, 4096)
  fc_hidden_bias: float = 0.0      # initial bias of fc6/fc7 under weight_init='paper'
  dropout_rate: float = 0.5
  batch_norm: bool = False
  weight_init: str = "paper"
  dense_eval: bool = False
  width_multiplier: float = 1.0
  act: str = "relu"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    paper = self.weight_init == "paper"
    act = activation(self.act)
    conv_init = classic_kernel_init(self.weight_init)
    conv_block = functools.partial(ConvNormAct, act=act, norm=self.batch_norm,
                                   use_bias=True, kernel_init=conv_init, dtype=self.dtype)
    num_convs = num_pools = 0
    for step in self.layers:
      if isinstance(step, ConvSpec):
        num_convs += 1
      step = with_width_multiplier(step if paper else without_paper_bias(step),
                                   self.width_multiplier)
      x = apply_step(step, x, train, conv_block, f"conv{num_convs}", self.dtype)
      if isinstance(step, PoolSpec):
        num_pools += 1
        self.sow("intermediates", f"stage{num_pools}", x)
    return FullyConnectedClassifier(
        self.num_classes, self.fc_window, self.fc_features, self.dropout_rate,
        dense=self.dense_eval,
        kernel_init=classic_kernel_init(self.weight_init, fully_connected=True),
        hidden_bias=self.fc_hidden_bias if paper else 0.0, dtype=self.dtype, act=act,
        name="head")(x, train)


# AlexNet, Section 3 and Figure 2: ReLU, then LRN after conv1 and conv2 (Section 3.3),
# overlapping 3/2 max-pooling after both LRNs and conv5 (Section 3.4). conv2/4/5 see only
# their own GPU's half of the previous layer (two towers: groups=2); conv3 and the FC
# layers see both. Section 5: biases of conv2/4/5 and fc6/fc7 start at 1.
# A 227 px input gives maps 55-27-13-6 (the paper's "224" does not divide).
ALEXNET = (
    ConvSpec(96, 11, 4, padding=0), LRN, max_pool_step(3, 2),
    ConvSpec(256, 5, groups=2, paper_bias=1.0), LRN, max_pool_step(3, 2),
    ConvSpec(384, 3),
    ConvSpec(384, 3, groups=2, paper_bias=1.0),
    ConvSpec(256, 3, groups=2, paper_bias=1.0), max_pool_step(3, 2),
)

# torchvision's single-tower AlexNet (64-192-384-256-256, conv1 padding 2, no LRN).
# torchvision puts an adaptive 6x6 average pool before fc6 (the identity at 224) and
# dropout before fc6/fc7 instead of after; neither changes parameters or inference at 224.
ALEXNET_TORCHVISION = (
    ConvSpec(64, 11, 4, padding=2), max_pool_step(3, 2),
    ConvSpec(192, 5), max_pool_step(3, 2),
    ConvSpec(384, 3),
    ConvSpec(256, 3),
    ConvSpec(256, 3), max_pool_step(3, 2),
)

# ZFNet, Figure 3: conv1 7x7/2 (padding 1) and conv2 5x5/2, dense (ungrouped) conv3-5;
# ReLU, 3/2 max-pool, then contrast normalisation across maps in layers 1-2. The figure's
# maps 224 -> 110 -> 55 -> 26 -> 13 -> 13 -> 13 -> 6 need ceil-mode pooling (Caffe's).
ZFNET = (
    ConvSpec(96, 7, 2, padding=1), max_pool_step(3, 2, ceil_mode=True), CONTRAST_NORM,
    ConvSpec(256, 5, 2, padding=0), max_pool_step(3, 2, ceil_mode=True), CONTRAST_NORM,
    ConvSpec(384, 3),
    ConvSpec(384, 3),
    ConvSpec(256, 3), max_pool_step(3, 2, ceil_mode=True),
)

# VGG, Table 1: the five blocks of each configuration, written as the table writes them
# ("conv<kernel>-<channels>", "LRN"); every block ends with 2x2/2 max-pooling, every conv
# has stride 1 and padding k//2 (Section 2.1).
_64, _128, _256, _512 = ("conv3-64",), ("conv3-128",), ("conv3-256",), ("conv3-512",)
VGG_TABLE1 = {
    "A":     (_64, _128, _256 * 2, _512 * 2, _512 * 2),
    "A-LRN": (_64 + ("LRN",), _128, _256 * 2, _512 * 2, _512 * 2),
    "B":     (_64 * 2, _128 * 2, _256 * 2, _512 * 2, _512 * 2),
    "C":     (_64 * 2, _128 * 2, _256 * 2 + ("conv1-256",), _512 * 2 + ("conv1-512",),
              _512 * 2 + ("conv1-512",)),
    "D":     (_64 * 2, _128 * 2, _256 * 3, _512 * 3, _512 * 3),
    "E":     (_64 * 2, _128 * 2, _256 * 4, _512 * 4, _512 * 4),
}


def vgg_layers(column: Sequence[Sequence[str]]) -> tuple:
  """One column of Table 1 as `ClassicNet` layers."""
  layers = []
  for block in column:
    for entry in block:
      if entry == "LRN":
        layers.append(LRN)
      else:
        kernel, features = entry.removeprefix("conv").split("-")
        layers.append(ConvSpec(int(features), int(kernel)))
    layers.append(max_pool_step(2, 2))
  return tuple(layers)


_register = functools.partial(register, family="classic")

_register("alexnet", functools.partial(ClassicNet, layers=ALEXNET, fc_window=6,
                                       fc_hidden_bias=1.0),
          input_size=227, min_input_size=227, crop_fraction=227 / 256,
          paper="Krizhevsky et al. 2012, NeurIPS")
_register("alexnet_torchvision",
          functools.partial(ClassicNet, layers=ALEXNET_TORCHVISION, fc_window=6,
                            weight_init="he"),
          input_size=224, min_input_size=223,
          paper="Krizhevsky 2014, arXiv:1404.5997 (torchvision's layout)")
# Section 3: 256x256 images, 224 crops for training and the 10-crop evaluation.
_register("zfnet", functools.partial(ClassicNet, layers=ZFNET, fc_window=6),
          input_size=224, min_input_size=207, crop_fraction=224 / 256,
          paper="Zeiler & Fergus 2013, arXiv:1311.2901")

# Default init: Glorot, with which every depth trains from scratch (Section 3.1 footnote);
# the paper trained A from N(0, 0.01) and started B-E from A's layers (configs/vgg.py).
_VGG_NAMES = {"A": "vgg11", "A-LRN": "vgg11_lrn", "B": "vgg13", "C": "vgg16_conv1",
              "D": "vgg16", "E": "vgg19"}
for _column, _name in _VGG_NAMES.items():
  _vgg = functools.partial(ClassicNet, layers=vgg_layers(VGG_TABLE1[_column]), fc_window=7,
                           weight_init="glorot")
  _vgg_meta = dict(input_size=224, min_input_size=224,
                   paper="Simonyan & Zisserman 2014, arXiv:1409.1556")
  _register(_name, _vgg, **_vgg_meta)
  if _column in ("A", "B", "D", "E"):  # torchvision's BatchNorm variants
    _register(f"{_name}_bn", functools.partial(_vgg, batch_norm=True, weight_init="he"),
              **_vgg_meta)
