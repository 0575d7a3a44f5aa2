"""Model registry: `names()`, `create(name, ...)`, `spec(name)`.

Contract (relied on by the trainer, configs, benchmarks and users):
  * `create(name, num_classes=1000, dtype=jnp.float32, **overrides)` returns a
    `flax.linen.Module`; an unknown name raises ValueError naming the closest names.
  * `model.apply(variables, images, train=bool, mutable=...)` takes NHWC float images and
    returns logits [N, num_classes]. BatchNorm statistics live in `batch_stats`.
  * Dropout and stochastic depth draw from the 'dropout' rng.
  * Auxiliary classifiers (GoogLeNet, Inception v3) are switched by `aux_logits: bool`
    and, when training, `sow` their logits into the 'aux_logits' collection; the main
    return value is always the main logits. The trainer weights every sown aux logit by
    `config.aux_loss_weight` without knowing which model produced it.
  * Named intermediates ('stem', 'stage1', ..., 'pre_logits') are sown into
    'intermediates' (big_vision style); request them with mutable=['intermediates'].
  * Parameter counts: size of `params` from
    `jax.eval_shape(model.init, key, jnp.zeros((1, s, s, 3)), train=False)` with
    `aux_logits=False`.

Each family module registers its models on import; add new families to `_FAMILIES`.
"""

import importlib

from cnn_jax.models.registry import (IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN,
                                     INCEPTION_STD, ModelSpec, create, names,
                                     overridable_fields, register, spec)

_FAMILIES = (
    "resnet",
    "classic",     # AlexNet, ZFNet, VGG
    "inception",   # GoogLeNet, Inception v2/v3/v4, Inception-ResNet
    "mobilenet",
    "densenet",
    "efficientnet",
)

for _family in _FAMILIES:
  importlib.import_module(f"cnn_jax.models.{_family}")
