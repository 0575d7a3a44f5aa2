"""The block library: every block used by a model is written once, here.

No block imports a model. Models receive blocks (or factories of them) and wire them.
"""

from cnn_jax.layers.conv import (BatchNorm, Conv, ConvNormAct, he_normal_fan_in,
                                  he_normal_fan_out, resolve_padding)
from cnn_jax.layers.head import ClassifierHead
from cnn_jax.layers.pooling import adaptive_avg_pool, avg_pool, global_avg_pool, max_pool
from cnn_jax.layers.activations import ACTIVATIONS, activation, hard_sigmoid, hard_swish
from cnn_jax.layers.squeeze_excite import SqueezeExcite
from cnn_jax.layers.drop import DropPath
from cnn_jax.layers.residual import SHORTCUTS, BasicBlock, Bottleneck, Shortcut
from cnn_jax.layers.mobile import DepthwiseSeparable, InvertedResidual, make_divisible
from cnn_jax.layers.dense import DenseLayer, NormActConv, Transition
from cnn_jax.layers.mobile import MobileNetBase, MobileStage
from cnn_jax.layers.classic import (INIT_SCHEMES, FullyConnectedClassifier, classic_kernel_init,
                                    local_contrast_norm, local_response_norm)
from cnn_jax.layers.inception import AuxClassifier, AuxSpec
from cnn_jax.layers.steps import (ConvSpec, InceptionModule, InceptionResidual, LRNSpec,
                                  MixedSpec, PoolSpec, ResidualSpec, Step, apply_step)
