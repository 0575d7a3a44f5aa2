"""The block library: every block used by a model is written once, here.

No block imports a model. Models receive blocks (or factories of them) and wire them.
"""

from cnn_jax.layers.conv import BatchNorm, Conv, ConvNormAct, he_normal_fan_out, resolve_padding
from cnn_jax.layers.head import ClassifierHead
from cnn_jax.layers.pooling import avg_pool, global_avg_pool, max_pool
from cnn_jax.layers.residual import SHORTCUTS, BasicBlock, Bottleneck, Shortcut
