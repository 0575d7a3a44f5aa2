"""DenseNet-BC weights from torchvision and Keras applications.

Both sources build the network of Huang et al. 2017 layer for layer as `models/densenet.py`
does, so the mapping is one name table per source:

* torchvision (densenet121/161/169/201): `features.conv0/norm0`, `features.denseblock{i}.
  denselayer{j}.norm1/conv1/norm2/conv2`, `features.transition{i}.norm/conv`,
  `features.norm5`, `classifier`. Checkpoints saved before torchvision 0.3 spell the dense
  layers' modules `norm.1`, `conv.2`, ...; torchvision remaps them with a regex on load,
  and so do we (either spelling is accepted). No override is needed: same padding, BN
  epsilon 1e-5. Input: ImageNet mean/std.
* Keras (DenseNet121/169/201): `conv1_conv/bn`, `conv{i+1}_block{j}_0_bn/1_conv/1_bn/
  2_conv`, `pool{i+1}_bn/conv`, `bn`, `predictions`. BatchNorm epsilon is 1.001e-5 (read
  from the model and returned as the `bn_epsilon` override). The stem's ZeroPadding2D(3)
  + 'valid' 7x7/2 conv is our symmetric padding 3, and ZeroPadding2D(1) + 'valid' 3x3/2
  max-pool equals our -inf-padded pool because it follows a ReLU (every input >= 0, so a
  zero never beats the window's maximum); the 3x3 'same' convs have stride 1, where
  'same' is symmetric. Keras preprocesses DenseNets in 'torch' mode (x/255, then ImageNet
  mean/std), so mean/std are ImageNet's. A Keras model built with a softmax classifier
  converts to ours, which returns the logits before it.
"""

from __future__ import annotations

import re

from cnn_jax import models
from cnn_jax.convert.common import (Converted, SourceWeights, Target, put_norm, register,
                                    torch_conv_kernel, torch_dense_kernel)
from cnn_jax.models.registry import IMAGENET_MEAN, IMAGENET_STD

# torchvision < 0.3 checkpoints: 'denselayer1.norm.1.weight' for 'denselayer1.norm1.weight'
# (the pattern torchvision.models.densenet._load_state_dict rewrites).
_OLD_DENSE_LAYER = re.compile(r"(denselayer\d+\.(?:norm|conv))([12])\.")

KERAS_BN_EPSILON = 1.001e-5  # keras.applications.densenet, every BatchNormalization


def _layer_names(block_sizes):
  """(our module path, source-name key) for every BN / conv, in network order.

  The key is ('stem' | 'layer' | 'transition' | 'final', block, layer, part) where part
  names the unit inside (bottleneck norm / conv, 3x3 norm / conv).
  """
  yield "stem_conv/conv", ("stem", "conv")
  yield "stem_conv/norm", ("stem", "norm")
  for i, n in enumerate(block_sizes, start=1):
    for j in range(1, n + 1):
      ours = f"block{i}_layer{j}"
      yield f"{ours}/bottleneck/norm", ("layer", i, j, "norm1")
      yield f"{ours}/bottleneck/conv", ("layer", i, j, "conv1")
      yield f"{ours}/conv/norm", ("layer", i, j, "norm2")
      yield f"{ours}/conv/conv", ("layer", i, j, "conv2")
    if i < len(block_sizes):
      yield f"transition{i}/reduce/norm", ("transition", i, "norm")
      yield f"transition{i}/reduce/conv", ("transition", i, "conv")
  yield "final_norm", ("final", "norm")


def _target(name: str, num_classes: int, overrides: dict):
  model = models.create(name, num_classes=num_classes, **overrides)
  return model, Target(model, models.spec(name).min_input_size)


# --- torchvision -----------------------------------------------------------------------

def _torch_name(key) -> str:
  kind = key[0]
  if kind == "stem":
    return {"conv": "features.conv0", "norm": "features.norm0"}[key[1]]
  if kind == "layer":
    _, i, j, part = key
    return f"features.denseblock{i}.denselayer{j}.{part}"
  if kind == "transition":
    return f"features.transition{key[1]}.{key[2]}"
  return "features.norm5"


def _torch_take(w: SourceWeights, key: str):
  """`key`, or its pre-0.3 spelling ('norm.1' for 'norm1') when only that is present."""
  if key not in w:
    old = _OLD_DENSE_LAYER.sub(r"\1.\2.", key)
    if old in w:
      return w.take(old)
  return w.take(key)


@register("torchvision", {"densenet121": "densenet121", "densenet161": "densenet161",
                          "densenet169": "densenet169", "densenet201": "densenet201"})
def from_torchvision(name: str, w: SourceWeights) -> Converted:
  """torchvision DenseNet -> ours; input normalised with ImageNet mean/std."""
  num_classes = _torch_take(w, "classifier.weight").shape[0]
  model, target = _target(name, num_classes, {})
  for ours, key in _layer_names(model.block_sizes):
    src = _torch_name(key)
    if ours.endswith("conv"):
      target.put(f"params/{ours}/kernel", torch_conv_kernel(_torch_take(w, f"{src}.weight")))
    else:
      put_norm(target, ours, *(_torch_take(w, f"{src}.{p}")
                               for p in ("weight", "bias", "running_mean", "running_var")))
  target.put("params/head/fc/kernel", torch_dense_kernel(_torch_take(w, "classifier.weight")))
  target.put("params/head/fc/bias", _torch_take(w, "classifier.bias"))
  return Converted(name=name, source="torchvision", overrides={},
                   variables=target.variables(), num_classes=num_classes,
                   mean=IMAGENET_MEAN, std=IMAGENET_STD)


# --- Keras -----------------------------------------------------------------------------

def _keras_name(key) -> str:
  kind = key[0]
  if kind == "stem":
    return {"conv": "conv1_conv", "norm": "conv1_bn"}[key[1]]
  if kind == "layer":
    _, i, j, part = key
    suffix = {"norm1": "0_bn", "conv1": "1_conv", "norm2": "1_bn", "conv2": "2_conv"}[part]
    return f"conv{i + 1}_block{j}_{suffix}"
  if kind == "transition":
    return f"pool{key[1] + 1}_{'bn' if key[2] == 'norm' else 'conv'}"
  return "bn"


def _keras_bn_epsilon(keras_model) -> float:
  """The epsilon every BatchNormalization of the model uses (one value, or an error)."""
  if keras_model is None:
    return KERAS_BN_EPSILON
  eps = {layer.get_config()["epsilon"] for layer in keras_model.layers
         if type(layer).__name__ == "BatchNormalization"}
  if len(eps) != 1:
    raise ValueError(f"Keras DenseNet with BatchNorm epsilons {sorted(eps)}; ours has one")
  return float(eps.pop())


@register("keras", {"densenet121": "DenseNet121", "densenet169": "DenseNet169",
                    "densenet201": "DenseNet201"})
def from_keras(name: str, w: SourceWeights) -> Converted:
  """Keras DenseNet -> ours with bn_epsilon=1.001e-5; 'torch' preprocessing, so input is
  normalised with ImageNet mean/std (see the module docstring for the stem's padding)."""
  num_classes = w.take("predictions/kernel").shape[-1]
  overrides = {"bn_epsilon": _keras_bn_epsilon(w.model)}
  model, target = _target(name, num_classes, overrides)
  for ours, key in _layer_names(model.block_sizes):
    src = _keras_name(key)
    if ours.endswith("conv"):
      target.put(f"params/{ours}/kernel", w.take(f"{src}/kernel"))
    else:
      put_norm(target, ours, *(w.take(f"{src}/{p}")
                               for p in ("gamma", "beta", "moving_mean", "moving_variance")))
  target.put("params/head/fc/kernel", w.take("predictions/kernel"))
  target.put("params/head/fc/bias", w.take("predictions/bias"))
  return Converted(name=name, source="keras", overrides=overrides,
                   variables=target.variables(), num_classes=num_classes,
                   mean=IMAGENET_MEAN, std=IMAGENET_STD)
