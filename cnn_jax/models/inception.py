"""GoogLeNet, BN-Inception, Inception v3 / v4 and Inception-ResNet v1 / v2.

Every version is one `Inception` network running a *layout*: named stages of named steps
(convs, pools, Inception modules, residual Inception blocks: the step language of
cnn_jax/layers/steps.py, shared with the classic nets) built from the paper-figure
builders of cnn_jax/layers/inception.py. The layouts below read like the papers' tables.

  googlenet              Szegedy et al. 2014, "Going Deeper with Convolutions", Table 1:
                         conv biases, no BN, LRN, true 5x5 branches, ceil-mode pooling,
                         aux heads after 4a and 4d (Section 5), dropout 0.4.
  googlenet_torchvision  torchvision's BN layout: 3x3 in the "5x5" branch, no LRN, a
                         2x2/2 pool before 5a, dropout 0.2, BN eps 1e-3.
  inception_v2           BN-Inception (Ioffe & Szegedy 2015, Figure 5) in TF-slim's
                         `inception_v2` widths; see INCEPTION_V2_MODULES for why.
  inception_v3           Szegedy et al. 2015b, "Rethinking the Inception Architecture",
                         Table 1, as torchvision / timm lay it out (aux head with BN).
  inception_v4, inception_resnet_v1, inception_resnet_v2
                         Szegedy et al. 2016, "Inception-v4, Inception-ResNet and the
                         Impact of Residual Connections", Figs. 3-19; v4 and IR-v2 follow
                         the authors' TF-slim code (timm), IR-v1 the paper's figures.

Ablation fields of `Inception`, shared by every version; each default is the paper's:
  norm   True: conv + BN + ReLU; False: conv + bias + ReLU. GoogLeNet registers False
         (Szegedy et al. 2014 predates BN), every other version True. `inception_v2` with
         norm=False is Ioffe & Szegedy 2015's "Inception" baseline (Section 4.2.2: the
         Figure 5 network without BN) against which BN-Baseline is compared.
  head   'gap': global average pool -> dropout -> FC (all versions). 'fc': the final map
         flattened -> dropout -> FC, the fully connected classifier that GoogLeNet's
         average pooling replaced for +0.6% top-1 (Szegedy et al. 2014, Section 5); at
         224 px GoogLeNet's FC then reads 7x7x1024 values instead of 1024.
  width_multiplier
         1.0: the paper's widths. Otherwise every conv width of the layout (stem,
         modules, reductions, the final 1x1 of Inception-ResNet v2) and of the aux heads
         (convs and GoogLeNet's hidden FC) is round(c * m), at least 1; num_classes is
         not scaled. Not a paper's ablation: it shrinks a version for the CPU-scale
         studies in experiments/ (googlenet_gap.py, batchnorm_speed.py,
         inception_v3_regularisers.py); parameters fall roughly as m^2. Inception-ResNet
         blocks stay valid: their projection returns to the (scaled) input width.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.layers import ClassifierHead, ConvNormAct, he_normal_fan_in, he_normal_fan_out
from cnn_jax.layers.inception import (AuxClassifier, AuxSpec, asymmetric_nxn,
                                      bn_inception_module, expanded_split, factorised_5x5,
                                      googlenet_module, grid_reduction, inception_reduction_a)
from cnn_jax.layers.steps import (ConvSpec, LRNSpec, MixedSpec, ResidualSpec, apply_step,
                                  avg_pool_step, conv, max_pool_step, with_avg_pool_rule,
                                  with_width_multiplier)
from cnn_jax.models.registry import INCEPTION_MEAN, INCEPTION_STD, register


# A layout: ((stage name, ((layer name, step), ...)), ...). The output of every stage is
# sown into 'intermediates' under the stage name ('stem', 'stage1', ...).
Layout = tuple


class Inception(nn.Module):
  """Runs a layout, then global average pool -> dropout -> FC.

  `norm=False` gives GoogLeNet's conv + bias + ReLU; otherwise conv + BN + ReLU (every
  conv of a step: the stem, the modules and the aux heads; the residual projections and
  the BN-Inception stem's depthwise conv have no BN either way). `head` is 'gap' (global
  average pool -> dropout -> FC) or 'fc' (flatten -> dropout -> FC: Szegedy et al. 2014,
  Section 5's fully connected alternative; its weight grows with the input size). With
  `aux_logits`, an `AuxClassifier` follows each layer named in `aux_after`; its logits
  are sown into 'aux_logits' as aux1, aux2, ... when training (the trainer weights them
  by config.aux_loss_weight); its parameters exist whenever `aux_logits` is set.

  Framework conventions, for imported weights (cnn_jax/convert/inception.py): `bn_scale=
  False` drops BN's learned scale (Keras's `scale=False`); `pool_count_include_pad`
  (None: each layout's own rule) sets how every average-pool branch divides at the
  border, False for TF / Keras 'SAME' pooling, True for PyTorch's.

  `width_multiplier` scales every conv width of the layout and the aux heads (see the
  module docstring), for the CPU-scale studies; 1.0 is the paper's network.
  """
  layout: Layout
  num_classes: int = 1000
  norm: bool = True
  bn_epsilon: float = 1e-3
  dropout_rate: float = 0.2
  aux_logits: bool = False
  aux_head: AuxSpec | None = None
  aux_after: tuple[str, ...] = ()
  dtype: Any = jnp.float32
  bn_scale: bool = True
  pool_count_include_pad: bool | None = None
  head: str = "gap"
  width_multiplier: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if self.aux_logits and not self.aux_after:
      raise ValueError("this network has no auxiliary classifier; use aux_logits=False")
    if self.head not in ("gap", "fc"):
      raise ValueError(f"unknown head {self.head!r}; choose 'gap' or 'fc'")
    if not self.width_multiplier > 0:
      raise ValueError(f"width_multiplier must be positive, got {self.width_multiplier}")
    # Without BN (GoogLeNet) the fan-out init of 1x1 reductions (fan_in >> fan_out)
    # blows activations up layer after layer; fan-in He init keeps their scale.
    kernel_init = he_normal_fan_out if self.norm else he_normal_fan_in
    conv_block = functools.partial(ConvNormAct, norm=self.norm, bn_epsilon=self.bn_epsilon,
                                   bn_scale=self.bn_scale, kernel_init=kernel_init,
                                   dtype=self.dtype)
    run_aux = self.aux_logits and (train or self.is_initializing())
    for stage, layers in self.layout:
      for name, step in layers:
        if self.pool_count_include_pad is not None:
          step = with_avg_pool_rule(step, self.pool_count_include_pad)
        step = with_width_multiplier(step, self.width_multiplier)
        x = apply_step(step, x, train, conv_block, name, self.dtype)
        if run_aux and name in self.aux_after:
          i = self.aux_after.index(name) + 1
          aux_head = self.aux_head.scaled(self.width_multiplier)
          logits = AuxClassifier(self.num_classes, aux_head, conv_block, self.dtype,
                                 name=f"aux_head{i}")(x, train)
          if train:
            self.sow("aux_logits", f"aux{i}", logits)
      self.sow("intermediates", stage, x)
    return ClassifierHead(self.num_classes, self.dropout_rate, dtype=self.dtype,
                          flatten=self.head == "fc", name="head")(x, train)


def _repeat(prefix: str, step, n: int) -> tuple:
  return tuple((f"{prefix}{i + 1}", step) for i in range(n))


# ---------------------------------------------------------------------------------------
# GoogLeNet (Szegedy et al. 2014). Table 1 rows: #1x1, #3x3 reduce, #3x3, #5x5 reduce,
# #5x5, pool proj.

GOOGLENET_MODULES = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


# The LRN of the paper's Caffe model (bvlc_googlenet): local_size 5, alpha 1e-4, beta
# 0.75 and Caffe's k = 1; Caffe divides alpha by local_size, so here alpha = 1e-4 / 5.
GOOGLENET_LRN = LRNSpec(size=5, alpha=1e-4 / 5, beta=0.75, k=1.0)


def googlenet_layout(torchvision: bool = False) -> Layout:
  # The paper's Caffe model pools 3x3/2 in ceil mode, so 112 -> 56 -> 28 -> 14 -> 7.
  pool = max_pool_step(3, 2, ceil_mode=True)
  lrn = () if torchvision else (GOOGLENET_LRN,)  # torchvision drops LRN (BN instead)
  k5 = 3 if torchvision else 5

  def module(key):
    return f"inception_{key}", googlenet_module(*GOOGLENET_MODULES[key], kernel_5x5=k5)

  stem = ((("conv1", conv(64, 7, 2)), ("pool1", pool))
          + tuple(("lrn1", s) for s in lrn)
          + (("conv2_reduce", conv(64)), ("conv2", conv(192, 3)))
          + tuple(("lrn2", s) for s in lrn)
          + (("pool2", pool),))
  # torchvision's pool before 5a is 2x2/2 (ceil), which gives the same 7x7 map.
  pool4 = max_pool_step(2, 2, ceil_mode=True) if torchvision else pool
  return (
      ("stem", stem),
      ("stage1", (module("3a"), module("3b"))),
      ("stage2", (("pool3", pool),) + tuple(module(k) for k in ("4a", "4b", "4c", "4d", "4e"))),
      ("stage3", (("pool4", pool4), module("5a"), module("5b"))),
  )


# Section 5: 5x5/3 average pool (4x4x512 at 4a), 1x1 conv 128 + ReLU, FC 1024 + ReLU,
# dropout 0.7, linear. torchvision pools adaptively to 4x4 instead.
GOOGLENET_AUX = AuxSpec(grid=4, pool_window=5, pool_stride=3, convs=(conv(128),),
                        hidden=1024, dropout_rate=0.7)
GOOGLENET_AUX_TORCHVISION = AuxSpec(grid=4, pool_window=None, convs=(conv(128),),
                                    hidden=1024, dropout_rate=0.7)


# ---------------------------------------------------------------------------------------
# BN-Inception (Ioffe & Szegedy 2015, Figure 5) in TF-slim's `inception_v2` widths.
#
# The paper's text gives 13.6M parameters but its Figure 5 does not reproduce that: the
# 4c and 4d rows (pool proj 128) sum to 608 channels where the output column says 576.
# TF-slim's inception_v2 (by the paper's authors' team, 73.9% top-1 published) resolves
# it with pool proj 96 in 4c and 4d, which gives 576; we follow TF-slim, ~11.2M
# parameters. Rows: #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool, proj.
INCEPTION_V2_MODULES = {
    "3a": (64, 64, 64, 64, 96, "avg", 32),
    "3b": (64, 64, 96, 64, 96, "avg", 64),
    "3c": (0, 128, 160, 64, 96, "max", 0),      # stride 2, max-pool pass-through
    "4a": (224, 64, 96, 96, 128, "avg", 128),
    "4b": (192, 96, 128, 96, 128, "avg", 128),
    "4c": (160, 128, 160, 128, 160, "avg", 96),  # paper: 128 (see above)
    "4d": (96, 128, 192, 160, 192, "avg", 96),   # paper: 128 (see above)
    "4e": (0, 128, 192, 192, 256, "max", 0),     # stride 2, max-pool pass-through
    "5a": (352, 192, 320, 160, 224, "avg", 128),
    "5b": (352, 192, 320, 192, 224, "max", 128),
}


def inception_v2_layout() -> Layout:
  def module(key):
    stride = 2 if key in ("3c", "4e") else 1
    return (f"inception_{key}", bn_inception_module(*INCEPTION_V2_MODULES[key], stride=stride))
  pool = max_pool_step(3, 2, padding=1)  # TF 'SAME': 112 -> 56 -> 28
  stem = (
      # The first conv is separable (Figure 5 footnote): depthwise 7x7/2 with depth
      # multiplier 8, then 1x1 to 64 (TF-slim: BN and ReLU after the pointwise only).
      ("conv1_depthwise", ConvSpec(kernel=7, stride=2, depth_multiplier=8)),
      ("conv1", conv(64)),
      ("pool1", pool),
      ("conv2_reduce", conv(64)),
      ("conv2", conv(192, 3)),
      ("pool2", pool),
  )
  return (
      ("stem", stem),
      ("stage1", tuple(module(k) for k in ("3a", "3b"))),
      ("stage2", tuple(module(k) for k in ("3c", "4a", "4b", "4c", "4d"))),
      ("stage3", tuple(module(k) for k in ("4e", "5a", "5b"))),
  )


# ---------------------------------------------------------------------------------------
# Inception v3 (Szegedy et al. 2015b, Table 1), in the layout of the released TF model
# that torchvision and timm port: the 35x35 modules keep a 5x5 branch beside the double
# 3x3 (Fig. 5 shows only the latter); the pool branches average with padding counted.

def _v3_35x35(pool_proj: int) -> MixedSpec:  # Fig. 5
  return MixedSpec(((conv(64),), (conv(48), conv(64, 5)), factorised_5x5(64, 96),
                    (avg_pool_step(), conv(pool_proj))))


def _v3_17x17(c7: int) -> MixedSpec:  # Fig. 6 with n = 7
  return MixedSpec(((conv(192),), asymmetric_nxn(c7, (c7, 192)),
                    asymmetric_nxn(c7, (c7, c7, c7, 192), first="nx1"),
                    (avg_pool_step(), conv(192))))


def _v3_8x8() -> MixedSpec:  # Fig. 7, expanded filter banks
  return MixedSpec(((conv(320),), (conv(384), expanded_split(384)),
                    (conv(448), conv(384, 3), expanded_split(384)),
                    (avg_pool_step(), conv(192))))


def _tf_slim_stem():
  """The 299 px stem shared by Inception v3 and Inception-ResNet v2 (v3 paper, Table 1)."""
  valid = dict(padding=0)
  return (
      ("conv_1a", conv(32, 3, 2, **valid)),
      ("conv_2a", conv(32, 3, **valid)),
      ("conv_2b", conv(64, 3)),
      ("pool_3a", max_pool_step(3, 2)),
      ("conv_3b", conv(80, 1)),
      ("conv_4a", conv(192, 3, **valid)),
      ("pool_5a", max_pool_step(3, 2)),
  )


def inception_v3_layout() -> Layout:
  valid = dict(padding=0)
  stem = (
      *_tf_slim_stem(),
  )
  return (
      ("stem", stem),
      ("stage1", (("mixed_5b", _v3_35x35(32)), ("mixed_5c", _v3_35x35(64)),
                  ("mixed_5d", _v3_35x35(64)))),
      ("stage2", (
          # Fig. 10: 35x35 -> 17x17 without a representational bottleneck; the same
          # branches as Inception-v4's Reduction-A, with (k, l, m, n) = (64, 96, 96, 384).
          ("mixed_6a", inception_reduction_a(64, 96, 96, 384)),
          ("mixed_6b", _v3_17x17(128)), ("mixed_6c", _v3_17x17(160)),
          ("mixed_6d", _v3_17x17(160)), ("mixed_6e", _v3_17x17(192)))),
      ("stage3", (
          ("mixed_7a", grid_reduction((conv(192), conv(320, 3, 2, **valid)),
                                      asymmetric_nxn(192, (192, 192))
                                      + (conv(192, 3, 2, **valid),))),
          ("mixed_7b", _v3_8x8()), ("mixed_7c", _v3_8x8()))),
  )


# Section 4 / torchvision: 5x5/3 average pool (5x5 at 17x17), 1x1 conv 128, 5x5 conv
# 768 (VALID, so 1x1), BN after both, linear.
INCEPTION_V3_AUX = AuxSpec(grid=5, pool_window=5, pool_stride=3,
                           convs=(conv(128), conv(768, 5, padding=0)))


# ---------------------------------------------------------------------------------------
# Inception-v4 and Inception-ResNet (Szegedy et al. 2016).

def _v4_stem() -> tuple:
  """Fig. 3, in the authors' TF-slim order (1x7 before 7x1 in mixed_4a's long branch)."""
  valid = dict(padding=0)
  return (
      ("conv_1a", conv(32, 3, 2, **valid)),
      ("conv_2a", conv(32, 3, **valid)),
      ("conv_2b", conv(64, 3)),
      ("mixed_3a", grid_reduction((conv(96, 3, 2, **valid),), pool_first=True)),
      ("mixed_4a", MixedSpec(((conv(64), conv(96, 3, **valid)),
                              asymmetric_nxn(64, (64, 64)) + (conv(96, 3, **valid),)))),
      ("mixed_5a", grid_reduction((conv(192, 3, 2, **valid),))),
  )


# TF-slim / timm average-pool branches exclude the padding from the mean.
_AVG = avg_pool_step(count_include_pad=False)

V4_A = MixedSpec(((conv(96),), (conv(64), conv(96, 3)), factorised_5x5(64, 96),
                  (_AVG, conv(96))))                                          # Fig. 4
V4_B = MixedSpec(((conv(384),), asymmetric_nxn(192, (224, 256)),
                  asymmetric_nxn(192, (192, 224, 224, 256), first="nx1"),
                  (_AVG, conv(128))))                                         # Fig. 5
V4_C = MixedSpec(((conv(256),), (conv(384), expanded_split(256)),
                  asymmetric_nxn(384, (448, 512), n=3, first="nx1") + (expanded_split(256),),
                  (_AVG, conv(256))))                                         # Fig. 6
V4_REDUCTION_B = grid_reduction(                                              # Fig. 8
    (conv(192), conv(192, 3, 2, padding=0)),
    asymmetric_nxn(256, (256, 320)) + (conv(320, 3, 2, padding=0),))


def inception_v4_layout() -> Layout:
  return (
      ("stem", _v4_stem()),
      ("stage1", _repeat("inception_a", V4_A, 4)),                              # Fig. 9
      ("stage2", (("reduction_a", inception_reduction_a(192, 224, 256, 384)),)  # Table 1
       + _repeat("inception_b", V4_B, 7)),
      ("stage3", (("reduction_b", V4_REDUCTION_B),) + _repeat("inception_c", V4_C, 3)),
  )


def _ir_reduction_b(n1: int, n2: int, n3: int, n4: int) -> MixedSpec:
  """Figs. 12 / 18: three 1x1-256 reduced branches ending in stride-2 3x3 convs of n1, n2
  and (n3 -> n4) outputs, beside a max pool. IR-v1 (384, 256, 256, 256), IR-v2 (384, 288,
  288, 320)."""
  return grid_reduction(
      (conv(256), conv(n1, 3, 2, padding=0)),
      (conv(256), conv(n2, 3, 2, padding=0)),
      (conv(256), conv(n3, 3), conv(n4, 3, 2, padding=0)))


# Residual scales: Section 3.3 ("between 0.1 and 0.3"); the values are those of the
# authors' TF-slim Inception-ResNet-v2 (block35 0.17, block17 0.10, block8 0.20), which
# the FaceNet Inception-ResNet-v1 reuses.
SCALE_A, SCALE_B, SCALE_C = 0.17, 0.10, 0.20


def inception_resnet_v1_layout() -> Layout:
  """Figs. 10-15: 5 x A (35x35x256), 10 x B (17x17x896), 5 x C (8x8x1792).

  Unlike IR-v2's public code, the paper's C blocks all keep the ReLU and the residual
  scale (there is no public IR-v1 ImageNet model to follow).
  """
  valid = dict(padding=0)
  # Fig. 14: the v3 stem up to conv_4a, then a strided 3x3 conv in place of the last pool.
  stem = (*_tf_slim_stem()[:6], ("conv_4b", conv(256, 3, 2, **valid)))
  block_a = ResidualSpec(((conv(32),), (conv(32), conv(32, 3)),
                          (conv(32), conv(32, 3), conv(32, 3))), SCALE_A)       # Fig. 10
  block_b = ResidualSpec(((conv(128),), asymmetric_nxn(128, (128, 128))), SCALE_B)  # Fig. 11
  block_c = ResidualSpec(((conv(192),), asymmetric_nxn(192, (192, 192), n=3)), SCALE_C)  # Fig. 13
  return (
      ("stem", stem),
      ("stage1", _repeat("inception_resnet_a", block_a, 5)),
      ("stage2", (("reduction_a", inception_reduction_a(192, 192, 256, 384)),)
       + _repeat("inception_resnet_b", block_b, 10)),
      ("stage3", (("reduction_b", _ir_reduction_b(384, 256, 256, 256)),)
       + _repeat("inception_resnet_c", block_c, 5)),
  )


def inception_resnet_v2_layout() -> Layout:
  """The authors' TF-slim model (timm's port), which differs from Figs. 3 and 15-19:
  its stem ends in a 320-wide Inception module instead of v4's stem, it has 10 / 20 / 10
  blocks instead of 5 / 10 / 5, its widths are 1088 and 2080 (Fig. 18 would give 1152
  and 2144), and its last block has scale 1 and no ReLU, followed by a 1x1 conv to 1536.
  """
  stem = (
      *_tf_slim_stem(),
      ("mixed_5b", MixedSpec(((conv(96),), (conv(48), conv(64, 5)), factorised_5x5(64, 96),
                              (_AVG, conv(64))))),
  )
  block_a = ((conv(32),), (conv(32), conv(32, 3)), (conv(32), conv(48, 3), conv(64, 3)))  # Fig. 16
  block_b = ((conv(192),), asymmetric_nxn(128, (160, 192)))                  # Fig. 17
  block_c = ((conv(192),), asymmetric_nxn(192, (224, 256), n=3))             # Fig. 19
  return (
      ("stem", stem),
      ("stage1", _repeat("inception_resnet_a", ResidualSpec(block_a, SCALE_A), 10)),
      ("stage2", (("reduction_a", inception_reduction_a(256, 256, 384, 384)),)
       + _repeat("inception_resnet_b", ResidualSpec(block_b, SCALE_B), 20)),
      ("stage3", (("reduction_b", _ir_reduction_b(384, 288, 288, 320)),)
       + _repeat("inception_resnet_c", ResidualSpec(block_c, SCALE_C), 9)
       + (("inception_resnet_c10", ResidualSpec(block_c, 1.0, activate=False)),
          ("conv_7b", conv(1536))))
  )


# ---------------------------------------------------------------------------------------
# Registry. min_input_size: the smallest square input for which no layer's output (aux
# heads included) is empty, checked by tests/test_models_inception.py. GoogLeNet's
# ceil-mode 3x3/2 pools need 2 pixels (31), torchvision's 2x2/2 pool before 5a only one
# (15); the VALID convs of v3 / v4 / Inception-ResNet need 75. BN-Inception pads every
# layer, so any size runs; 32 (total stride 32: a 1x1 last map) as for ResNet.

_V2016 = "Szegedy et al. 2016, arXiv:1602.07261"

register("googlenet", functools.partial(
    Inception, layout=googlenet_layout(), norm=False, dropout_rate=0.4, aux_logits=True,
    aux_head=GOOGLENET_AUX, aux_after=("inception_4a", "inception_4d")),
    family="googlenet", input_size=224, min_input_size=31,
    paper="Szegedy et al. 2014, arXiv:1409.4842")
register("googlenet_torchvision", functools.partial(
    Inception, layout=googlenet_layout(torchvision=True), dropout_rate=0.2,
    aux_logits=True, aux_head=GOOGLENET_AUX_TORCHVISION,
    aux_after=("inception_4a", "inception_4d")),
    family="googlenet", input_size=224, min_input_size=15,
    paper="Szegedy et al. 2014, arXiv:1409.4842 (torchvision layout)")
register("inception_v2", functools.partial(Inception, layout=inception_v2_layout()),
         family="inception", input_size=224, min_input_size=32, mean=INCEPTION_MEAN,
         std=INCEPTION_STD, paper="Ioffe & Szegedy 2015, arXiv:1502.03167 (TF-slim widths)")
register("inception_v3", functools.partial(
    Inception, layout=inception_v3_layout(), aux_logits=True, aux_head=INCEPTION_V3_AUX,
    aux_after=("mixed_6e",)),
    family="inception", input_size=299, min_input_size=75, mean=INCEPTION_MEAN,
    std=INCEPTION_STD, paper="Szegedy et al. 2015, arXiv:1512.00567")
register("inception_v4", functools.partial(Inception, layout=inception_v4_layout()),
         family="inception", input_size=299, min_input_size=75, mean=INCEPTION_MEAN,
         std=INCEPTION_STD, paper=_V2016)
register("inception_resnet_v1", functools.partial(Inception, layout=inception_resnet_v1_layout()),
         family="inception", input_size=299, min_input_size=75, mean=INCEPTION_MEAN,
         std=INCEPTION_STD, paper=_V2016)
register("inception_resnet_v2", functools.partial(Inception, layout=inception_resnet_v2_layout()),
         family="inception", input_size=299, min_input_size=75, mean=INCEPTION_MEAN,
         std=INCEPTION_STD, crop_fraction=0.8975, paper=_V2016)
