"""ResNet-18..152 from torchvision, ResNet-50/101/152 from Keras applications.

torchvision's ResNets are "v1.5" (stride in the bottleneck's 3x3), biasless convs, BN
epsilon 1e-5, symmetric padding: our defaults, so no overrides. Input: ImageNet mean/std.

Keras's `ResNet50/101/152` are the paper's v1 (Caffe port): the stride sits in each
stage's first 1x1 (`downsample_in_3x3=False`), every conv has a bias next to its
BatchNorm (`conv_bias=True`) and BN epsilon is 1.001e-5 (read from the model). Their
explicit ZeroPadding2D before the 7x7/2 stem conv (3) and before the max-pool (1) equal
our symmetric padding (the pool follows a ReLU, so zero and -inf padding agree) and the
3x3 convs' 'same' padding is stride 1, hence symmetric. Input: 'caffe' mode (BGR 0-255
minus the ImageNet mean): we flip the stem conv to take RGB, and mean/std express the
rest (see `cnn_jax.convert.classic`).
"""

from __future__ import annotations

import re

from cnn_jax import models
from cnn_jax.convert.common import (CAFFE_MEAN, CAFFE_STD, Converted, SourceWeights, Target,
                                    bgr_to_rgb, mismatch, put_conv, put_keras_norm,
                                    put_torch_norm, register, torch_conv_kernel,
                                    torch_dense_kernel)
from cnn_jax.layers import Bottleneck
from cnn_jax.models.registry import IMAGENET_MEAN, IMAGENET_STD

TORCHVISION = {f"resnet{d}": f"resnet{d}" for d in (18, 34, 50, 101, 152)}
KERAS = {f"resnet{d}": f"ResNet{d}" for d in (50, 101, 152)}

# Test-sized inputs suffice: shapes do not depend on the resolution.
_TARGET_SIZE = 32


def _stage_sizes(keys, pattern: str) -> tuple[int, ...]:
  """Blocks per stage from keys matched by `pattern` (groups: stage, block)."""
  blocks: dict[int, set[int]] = {}
  for k in keys:
    if m := re.fullmatch(pattern, k):
      blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
  return tuple(len(blocks[s]) for s in sorted(blocks))


def _check_layout(source: str, name: str, model, sizes, bottleneck: bool) -> None:
  ours_bottleneck = model.block is Bottleneck
  if (tuple(sizes), bottleneck) != (tuple(model.stage_sizes), ours_bottleneck):
    kind = lambda b: "bottleneck" if b else "basic"
    raise mismatch(source, name, f"{kind(bottleneck)} blocks {tuple(sizes)} per stage",
                   f"{kind(ours_bottleneck)} blocks {tuple(model.stage_sizes)}")


def _block_convs(bottleneck: bool) -> int:
  return 3 if bottleneck else 2


@register("torchvision", TORCHVISION)
def from_torchvision(name: str, src: SourceWeights) -> Converted:
  """torchvision `conv1/bn1`, `layer<s>.<b>.conv<i>/bn<i>` (+ `downsample.0/1`), `fc`."""
  sizes = _stage_sizes(src.keys(), r"layer(\d+)\.(\d+)\.conv1\.weight")
  bottleneck = "layer1.0.conv3.weight" in src
  num_classes = src.take("fc.weight").shape[0]
  model = models.create(name, num_classes=num_classes)
  _check_layout("torchvision", name, model, sizes, bottleneck)

  target = Target(model, _TARGET_SIZE)
  put_conv(target, "stem_conv/conv", torch_conv_kernel(src.take("conv1.weight")))
  put_torch_norm(target, "stem_conv/norm", src, "bn1")
  for s, num_blocks in enumerate(sizes):
    for b in range(num_blocks):
      theirs, ours = f"layer{s + 1}.{b}", f"stage{s + 1}_block{b + 1}"
      for i in range(1, _block_convs(bottleneck) + 1):
        put_conv(target, f"{ours}/conv{i}/conv",
                 torch_conv_kernel(src.take(f"{theirs}.conv{i}.weight")))
        put_torch_norm(target, f"{ours}/conv{i}/norm", src, f"{theirs}.bn{i}")
      if f"{theirs}.downsample.0.weight" in src:
        put_conv(target, f"{ours}/shortcut/proj/conv",
                 torch_conv_kernel(src.take(f"{theirs}.downsample.0.weight")))
        put_torch_norm(target, f"{ours}/shortcut/proj/norm", src, f"{theirs}.downsample.1")
  target.put("params/head/fc/kernel", torch_dense_kernel(src.take("fc.weight")))
  target.put("params/head/fc/bias", src.take("fc.bias"))
  return Converted(name=name, source="torchvision", overrides={},
                   variables=target.variables(), num_classes=num_classes,
                   mean=IMAGENET_MEAN, std=IMAGENET_STD)


def _keras_epsilon(src: SourceWeights) -> float:
  """The BN epsilon every BatchNormalization of the Keras model shares."""
  if src.model is None:
    return 1.001e-5  # keras.applications.resnet's constant
  eps = {float(l.epsilon) for l in src.model.layers if hasattr(l, "moving_variance")}
  if len(eps) != 1:
    raise ValueError(f"Keras ResNet BatchNorms use several epsilons {sorted(eps)}; "
                     "ours has one")
  return eps.pop()


@register("keras", KERAS)
def from_keras(name: str, src: SourceWeights) -> Converted:
  """Keras ResNet v1 (with top): `conv1_conv/bn`, `conv<s+2>_block<b>_<i>_conv/bn` with
  i=0 the projection shortcut, `predictions`."""
  if "predictions/kernel" not in src:
    raise ValueError(f"Keras {name} has no 'predictions' layer: build it with "
                     "include_top=True (ours always has the classifier)")
  sizes = _stage_sizes(src.keys(), r"conv(\d+)_block(\d+)_1_conv/kernel")
  bottleneck = "conv2_block1_3_conv/kernel" in src
  num_classes = src.take("predictions/kernel").shape[1]
  overrides = {"downsample_in_3x3": False, "conv_bias": True,
               "bn_epsilon": _keras_epsilon(src)}
  model = models.create(name, num_classes=num_classes, **overrides)
  _check_layout("keras", name, model, sizes, bottleneck)

  def conv_norm(ours: str, theirs: str, first: bool = False) -> None:
    kernel = src.take(f"{theirs}_conv/kernel")
    put_conv(target, f"{ours}/conv", bgr_to_rgb(kernel) if first else kernel,
             src.take(f"{theirs}_conv/bias"))
    put_keras_norm(target, f"{ours}/norm", src, f"{theirs}_bn")

  target = Target(model, _TARGET_SIZE)
  conv_norm("stem_conv", "conv1", first=True)
  for s, num_blocks in enumerate(sizes):
    for b in range(num_blocks):
      theirs, ours = f"conv{s + 2}_block{b + 1}", f"stage{s + 1}_block{b + 1}"
      for i in range(1, _block_convs(bottleneck) + 1):
        conv_norm(f"{ours}/conv{i}", f"{theirs}_{i}")
      if f"{theirs}_0_conv/kernel" in src:
        conv_norm(f"{ours}/shortcut/proj", f"{theirs}_0")
  target.put("params/head/fc/kernel", src.take("predictions/kernel"))
  target.put("params/head/fc/bias", src.take("predictions/bias"))
  return Converted(name=name, source="keras", overrides=overrides,
                   variables=target.variables(), num_classes=num_classes,
                   mean=CAFFE_MEAN, std=CAFFE_STD, source_bgr=True)
