"""AlexNet and VGG from torchvision and Keras applications.

Our FC layers are convolutions (`FullyConnectedClassifier`): fc6 is a window x window
VALID conv over the last map, fc7/fc8 are 1x1 convs. So fc6's dense weights are reshaped
from the source's flatten order: torchvision flattens NCHW (c, h, w) after an adaptive
average pool to 7x7 (AlexNet 6x6), Keras flattens NHWC (h, w, c).

Input sizes: at 224 torchvision's adaptive pool is the identity, so the converted model
equals torchvision's there; at other sizes torchvision resamples the last map and ours
refuses (or, with `dense_eval=True`, averages sliding class scores: not the same thing).
Keras's VGG with its top fixes the input at 224 anyway.

Input normalisation:
* torchvision: ImageNet mean/std on RGB in [0, 1].
* Keras ('caffe' mode of `keras.applications.vgg16.preprocess_input`, also ResNet v1):
  BGR, 0-255, minus the BGR ImageNet mean, no scaling. We reverse the first conv's input
  channels so ours takes RGB, and the rest is `(rgb01 - mean) / std` with
  mean = (123.68, 116.779, 103.939) / 255 and std = 1/255.
"""

from __future__ import annotations

import re

import numpy as np

from cnn_jax import models
from cnn_jax.convert.common import (CAFFE_MEAN, CAFFE_STD, Converted, SourceWeights, Target,
                                    bgr_to_rgb, flatten_keras_fc, flatten_torch_fc, mismatch,
                                    put_conv, put_torch_norm, register, torch_conv_kernel,
                                    torch_dense_kernel)
from cnn_jax.models import classic as family
from cnn_jax.models.registry import IMAGENET_MEAN, IMAGENET_STD

TORCHVISION = {"alexnet_torchvision": "alexnet", "vgg11": "vgg11", "vgg13": "vgg13",
               "vgg16": "vgg16", "vgg19": "vgg19", "vgg11_bn": "vgg11_bn",
               "vgg13_bn": "vgg13_bn", "vgg16_bn": "vgg16_bn", "vgg19_bn": "vgg19_bn"}
KERAS = {"vgg16": "VGG16", "vgg19": "VGG19"}


# --- AlexNet / VGG ---------------------------------------------------------------------

def _convs(model: family.ClassicNet) -> list[family.ConvSpec]:
  return [l for l in model.layers if isinstance(l, family.ConvSpec)]


def _indexed(keys, pattern: str) -> list[int]:
  """Sorted distinct integer indices captured by `pattern` over `keys`."""
  return sorted({int(m.group(1)) for k in keys if (m := re.fullmatch(pattern, k))})


def _put_fc_head(target: Target, fc6: np.ndarray, fc6_bias: np.ndarray,
                 dense: list[tuple[np.ndarray, np.ndarray]]) -> None:
  """fc6 as an (h, w, c, out) conv kernel, fc7/fc8 as (in, out) dense kernels."""
  put_conv(target, "head/fc6", fc6, fc6_bias)
  for i, (w, b) in enumerate(dense):
    put_conv(target, f"head/fc{7 + i}", w.reshape(1, 1, *w.shape), b)


@register("torchvision", TORCHVISION)
def from_torchvision(name: str, src: SourceWeights) -> Converted:
  """torchvision AlexNet / VGG / VGG-BN: `features.<i>` conv (+ BN at `features.<i+1>`)
  in order, then `classifier.<i>` Linear layers fc6, fc7, fc8. No overrides needed:
  torchvision pads symmetrically and keeps conv biases next to BN, as ours does."""
  convs = [i for i in _indexed(src.keys(), r"features\.(\d+)\.weight")
           if f"features.{i}.running_mean" not in src]  # the rest are BatchNorms
  has_bn = any(f"features.{i + 1}.running_mean" in src for i in convs)
  fcs = _indexed(src.keys(), r"classifier\.(\d+)\.weight")
  if not fcs:
    raise mismatch("torchvision", name, "no classifier.<i> layers", "an FC head")
  num_classes = src.take(f"classifier.{fcs[-1]}.weight").shape[0]
  model = models.create(name, num_classes=num_classes)
  ours = _convs(model)
  if (len(convs), has_bn) != (len(ours), model.batch_norm):
    bn = lambda b: " with BatchNorm" if b else " without BatchNorm"
    raise mismatch("torchvision", name, f"{len(convs)} convs{bn(has_bn)}",
                   f"{len(ours)}{bn(model.batch_norm)}")
  if len(fcs) != len(model.fc_features) + 1:
    raise mismatch("torchvision", name, f"{len(fcs)} FC layers",
                   f"{len(model.fc_features) + 1}")

  target = Target(model, models.spec(name).input_size)
  for n, i in enumerate(convs, start=1):
    put_conv(target, f"conv{n}/conv", torch_conv_kernel(src.take(f"features.{i}.weight")),
             src.take(f"features.{i}.bias"))
    if has_bn:
      put_torch_norm(target, f"conv{n}/norm", src, f"features.{i + 1}")
  window, channels = model.fc_window, ours[-1].features
  fc6 = src.take(f"classifier.{fcs[0]}.weight")
  if fc6.shape[1] != channels * window * window:
    raise mismatch("torchvision", name, f"fc6 over {fc6.shape[1]} inputs",
                   f"{channels}x{window}x{window}")
  _put_fc_head(target, flatten_torch_fc(fc6, window, window, channels),
               src.take(f"classifier.{fcs[0]}.bias"),
               [(torch_dense_kernel(src.take(f"classifier.{i}.weight")),
                 src.take(f"classifier.{i}.bias")) for i in fcs[1:]])
  return Converted(name=name, source="torchvision", overrides={},
                   variables=target.variables(), num_classes=num_classes,
                   mean=IMAGENET_MEAN, std=IMAGENET_STD)


@register("keras", KERAS)
def from_keras(name: str, src: SourceWeights) -> Converted:
  """Keras VGG16 / VGG19 (with top): `block<b>_conv<k>` in order, then fc1, fc2,
  predictions. 'same' padding of a 3x3 stride-1 conv is symmetric, so no overrides;
  Keras has no dropout (ours is off at inference). Caffe-mode input (module docstring):
  the first conv is flipped to take RGB."""
  if "predictions/kernel" not in src:
    raise ValueError(f"Keras {name} has no 'predictions' layer: build it with "
                     "include_top=True (ours always has the FC head)")
  blocks = sorted((int(m.group(1)), int(m.group(2))) for k in src.keys()
                  if (m := re.fullmatch(r"block(\d+)_conv(\d+)/kernel", k)))
  num_classes = src.take("predictions/kernel").shape[1]
  model = models.create(name, num_classes=num_classes)
  ours = _convs(model)
  if len(blocks) != len(ours) or model.batch_norm:
    raise mismatch("keras", name, f"{len(blocks)} convs without BatchNorm",
                   f"{len(ours)}{' with BatchNorm' if model.batch_norm else ''}")

  target = Target(model, models.spec(name).input_size)
  for n, (b, k) in enumerate(blocks, start=1):
    kernel = src.take(f"block{b}_conv{k}/kernel")
    put_conv(target, f"conv{n}/conv", bgr_to_rgb(kernel) if n == 1 else kernel,
             src.take(f"block{b}_conv{k}/bias"))
  window, channels = model.fc_window, ours[-1].features
  fc1 = src.take("fc1/kernel")
  if fc1.shape[0] != channels * window * window:
    raise mismatch("keras", name, f"fc1 over {fc1.shape[0]} inputs",
                   f"{window}x{window}x{channels}")
  _put_fc_head(target, flatten_keras_fc(fc1, window, window, channels),
               src.take("fc1/bias"),
               [(src.take(f"{k}/kernel"), src.take(f"{k}/bias"))
                for k in ("fc2", "predictions")])
  return Converted(name=name, source="keras", overrides={}, variables=target.variables(),
                   num_classes=num_classes, mean=CAFFE_MEAN, std=CAFFE_STD, source_bgr=True)
