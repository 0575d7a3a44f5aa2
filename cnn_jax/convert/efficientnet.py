"""EfficientNet B0-B7 from torchvision and from Keras applications.

The MBConv block is our InvertedResidual, so the mapping reuses MobileNet's helpers
(cnn_jax/convert/mobilenet.py).

torchvision: symmetric padding (our default); BatchNorm eps 1e-5 / momentum 0.1 for
B0-B4, and the TF port's eps 1e-3 / momentum 0.01 (Flax decay 0.99) for B5-B7, set
explicitly as overrides. Input: ImageNet mean/std.

Keras: BatchNorm eps 1e-3, momentum 0.99 (read from the layers); the stem and every
stride-2 depthwise conv are ZeroPadding2D(correct_pad) + 'valid', which is TF 'SAME' at
the size the model was built for (checked, see mobilenet.py), so `padding='SAME'`.
Keras EfficientNet embeds its input preprocessing: Rescaling(1/255), a Normalization
layer, and, only when built with weights='imagenet', a second per-channel Rescaling by
1/sqrt(stddev) that undoes Keras 3's sqrt bug (the stored "variance" is the std). We read
whichever of these layers are present, with the Normalization's mean / variance as
loaded (built with weights=None it holds 0 / 1, i.e. the identity, until weights are
loaded), and return the affine map they compute as `mean`/`std` for `(rgb01 - mean) /
std`; our model does not embed it.
"""

from __future__ import annotations

from cnn_jax import models
from cnn_jax.convert.common import (Converted, SourceWeights, Target, mismatch, put_conv,
                                    register, torch_dense_kernel)
from cnn_jax.convert.mobilenet import (indexed, keras_bn_overrides, keras_check_same_padding,
                                       keras_input_normalisation, put_keras_conv_bn,
                                       put_keras_inverted_residuals, put_torch_conv_bn,
                                       put_torch_inverted_residuals, require_top)
from cnn_jax.models.registry import IMAGENET_MEAN, IMAGENET_STD

VARIANTS = tuple(f"b{i}" for i in range(8))
TORCHVISION = {f"efficientnet_{v}": f"efficientnet_{v}" for v in VARIANTS}
KERAS = {f"efficientnet_{v}": f"EfficientNet{v.upper()}" for v in VARIANTS}

_TARGET_SIZE = 32


@register("torchvision", TORCHVISION)
def from_torchvision(name: str, src: SourceWeights) -> Converted:
  """torchvision `features.0` stem, `features.<s>.<b>.block` MBConvs (expand, depthwise,
  SE `fc1`/`fc2`, project) for stages s = 1..7, `features.8` last 1x1 conv,
  `classifier.1`."""
  if "classifier.1.weight" not in src:
    raise mismatch("torchvision", name, "no classifier.1", "an EfficientNet classifier")
  num_classes = src.take("classifier.1.weight").shape[0]
  tf_port = name.removeprefix("efficientnet_") in ("b5", "b6", "b7")
  overrides = {"bn_epsilon": 1e-3, "bn_momentum": 0.99} if tf_port else \
              {"bn_epsilon": 1e-5, "bn_momentum": 0.9}
  target = Target(models.create(name, num_classes=num_classes, **overrides), _TARGET_SIZE)

  stages = indexed(src.keys(), "features.")
  put_torch_conv_bn(target, "stem_conv", src, "features.0.0", "features.0.1")
  prefixes = [f"features.{s}.{b}.block" for s in stages[1:-1]
              for b in indexed(src.keys(), f"features.{s}.")]
  put_torch_inverted_residuals(name, target, src, prefixes, split_project=False)
  last = stages[-1]
  put_torch_conv_bn(target, "head_conv", src, f"features.{last}.0", f"features.{last}.1")
  target.put("params/head/fc/kernel", torch_dense_kernel(src.take("classifier.1.weight")))
  target.put("params/head/fc/bias", src.take("classifier.1.bias"))
  return Converted(name=name, source="torchvision", overrides=overrides,
                   variables=target.variables(), num_classes=num_classes,
                   mean=IMAGENET_MEAN, std=IMAGENET_STD)


_KERAS_NAMES = {"expand": ("expand_conv", "expand_bn"), "depthwise": ("dwconv", "bn"),
                "project": ("project_conv", "project_bn"), "se": ("se_reduce", "se_expand")}


@register("keras", KERAS)
def from_keras(name: str, src: SourceWeights) -> Converted:
  """Keras EfficientNetB<k>: `stem_conv`/`stem_bn`, blocks `block<s><a..>_*` in stage and
  letter order, `top_conv`/`top_bn`, Dense `predictions`."""
  require_top(name, src, "predictions/kernel")
  model = src.model
  keras_check_same_padding(name, model)
  overrides = {"padding": "SAME", **keras_bn_overrides(name, model)}
  mean, std = keras_input_normalisation(name, model, src, (IMAGENET_MEAN, IMAGENET_STD))
  num_classes = src.take("predictions/kernel").shape[-1]
  target = Target(models.create(name, num_classes=num_classes, **overrides), _TARGET_SIZE)
  put_keras_conv_bn(target, "stem_conv", src, "stem_conv", "stem_bn")
  # Block layers are named block<stage><letter>_<part>: 'block2b_expand_conv'.
  blocks = sorted({k.split("_", 1)[0] for k in src.keys() if k.startswith("block")},
                  key=lambda b: (int(b[5:-1]), b[-1]))
  put_keras_inverted_residuals(name, target, src, [f"{b}_" for b in blocks], _KERAS_NAMES)
  put_keras_conv_bn(target, "head_conv", src, "top_conv", "top_bn")
  put_conv(target, "head/fc", src.take("predictions/kernel"), src.take("predictions/bias"))
  return Converted(name=name, source="keras", overrides=overrides,
                   variables=target.variables(), num_classes=num_classes, mean=mean, std=std)
