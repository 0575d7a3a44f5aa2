"""DenseNet-BC (Huang et al. 2017, "Densely Connected Convolutional Networks", Table 1).

Stem 7x7/2 conv with 2k channels + 3x3/2 max-pool, four dense blocks joined by
transitions that halve the width (compression 0.5, Sec. 3 "Compression") and the
resolution, then a final BN-ReLU and the classifier. Variants differ only in the layers
per block and the growth rate k (DenseNet-161: k=48, 96 stem channels).

`remat=True` recomputes each dense layer (concatenation, BN-ReLU-conv) in the backward
pass instead of keeping its activations: training memory grows linearly with depth
instead of quadratically, for about one extra forward pass (Pleiss et al. 2017). Both
settings have the same parameters and give the same loss and gradients.
Intermediates: 'stem', 'stage1'..'stage4' (each dense block's output) and 'pre_logits'.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.layers import BatchNorm, ClassifierHead, ConvNormAct, DenseLayer, Transition, max_pool
from cnn_jax.models.registry import register


class DenseNet(nn.Module):
  block_sizes: Sequence[int]
  growth_rate: int = 32
  num_classes: int = 1000
  stem_features: int | None = None  # default 2k (Sec. 3, "Implementation Details")
  bn_size: int = 4
  compression: float = 0.5
  remat: bool = False
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    bn = dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon, dtype=self.dtype)
    stem = self.stem_features or 2 * self.growth_rate
    x = ConvNormAct(stem, 7, 2, name="stem_conv", **bn)(x, train)
    x = max_pool(x, 3, 2, padding=1)
    self.sow("intermediates", "stem", x)
    # `train` (argument 2 after self and the feature list) is a Python bool: static.
    layer_cls = nn.remat(DenseLayer, static_argnums=(2,)) if self.remat else DenseLayer
    for i, num_layers in enumerate(self.block_sizes):
      features = [x]
      for j in range(num_layers):
        features.append(layer_cls(self.growth_rate, self.bn_size, name=f"block{i + 1}_layer{j + 1}",
                                  **bn)(features, train))
      x = jnp.concatenate(features, axis=-1)
      self.sow("intermediates", f"stage{i + 1}", x)
      if i + 1 < len(self.block_sizes):
        x = Transition(int(x.shape[-1] * self.compression), name=f"transition{i + 1}",
                       **bn)(x, train, parts=features)
    x = nn.relu(BatchNorm(momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                          dtype=self.dtype, name="final_norm")(x, train, parts=features))
    return ClassifierHead(self.num_classes, dtype=self.dtype, name="head")(x, train)


# Table 1 (and torchvision for 161): (layers per dense block, growth rate k).
VARIANTS = {
    "densenet121": ((6, 12, 24, 16), 32),
    "densenet161": ((6, 12, 36, 24), 48),
    "densenet169": ((6, 12, 32, 32), 32),
    "densenet201": ((6, 12, 48, 32), 32),
    "densenet264": ((6, 12, 64, 48), 32),
}

for _name, (_blocks, _k) in VARIANTS.items():
  register(_name, functools.partial(DenseNet, block_sizes=_blocks, growth_rate=_k),
           family="densenet", input_size=224, min_input_size=32,
           paper="Huang et al. 2017, arXiv:1608.06993")
