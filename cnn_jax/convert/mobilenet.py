"""MobileNet v2 / v3 from torchvision; MobileNet v1, v2, v3 from Keras applications.

torchvision pads symmetrically (our default) and its MobileNet v3 uses BatchNorm eps
1e-3 with momentum 0.01 (Flax decay 0.99); v2 keeps PyTorch's eps 1e-5, momentum 0.1.
Input: ImageNet mean/std.

Keras conventions, read from the model's layers rather than assumed:
- BatchNorm epsilon / momentum (1e-3 everywhere; momentum 0.99 in v1, 0.999 in v2 / v3)
  become `bn_epsilon` / `bn_momentum`.
- Padding: 'same' convs are TF 'SAME'; stride-2 depthwise convs are ZeroPadding2D +
  'valid', with `correct_pad` pads that equal TF 'SAME' at the size the model was built
  for. So we convert with `padding='SAME'` and check every ZeroPadding2D against it. A
  model built for a dynamic size (MobileNetV3's default `input_shape=None`) and
  MobileNet v1 (always ((0, 1), (0, 1))) pad stride-2 convs by the fixed (k//2 - 1, k//2)
  that 'SAME' gives on even maps: identical whenever every stride-2 layer sees an even
  size, i.e. inputs divisible by 32 (224 included); odd maps would differ by a pixel.
- MobileNet v1 uses ReLU6 (`act='relu6'`); its and v3's classifiers are 1x1 convs on the
  pooled features, which are our Dense `head/fc` (and v3's hard-swish `conv_2` is our
  `head_fc`).
- Input: MobileNet v1 / v2 expect 'tf' mode ([-1, 1]: mean = std = 0.5). MobileNet v3
  (and EfficientNet) embed Rescaling / Normalization layers in front of the first conv
  that map raw 0-255 RGB to the network's input; ours does not embed them, so we read
  those layers and return the per-channel affine map they compute as `mean`/`std`
  (`(rgb01 - mean) / std`, rgb01 = raw / 255). A v3 built with
  `include_preprocessing=False` expects [-1, 1] ('tf' mode) like v1 / v2.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cnn_jax import models
from cnn_jax.convert.common import (Converted, SourceWeights, Target, keras_depthwise_kernel,
                                    mismatch, put_conv, put_keras_norm, put_torch_norm,
                                    register, torch_conv_kernel, torch_dense_kernel)
from cnn_jax.models.registry import IMAGENET_MEAN, IMAGENET_STD

TORCHVISION = {"mobilenet_v2": "mobilenet_v2", "mobilenet_v3_large": "mobilenet_v3_large",
               "mobilenet_v3_small": "mobilenet_v3_small"}
KERAS = {"mobilenet_v1": "MobileNet", "mobilenet_v2": "MobileNetV2",
         "mobilenet_v3_large": "MobileNetV3Large", "mobilenet_v3_small": "MobileNetV3Small"}

TF_MEAN = TF_STD = (0.5, 0.5, 0.5)  # Keras 'tf' preprocessing: raw / 127.5 - 1

# Test-sized inputs suffice: variable shapes do not depend on the resolution.
_TARGET_SIZE = 32


# --- helpers shared with efficientnet.py -------------------------------------------------

def num_blocks(target: Target) -> int:
  """How many `block<i>` modules our model has."""
  found = {int(p.split("/")[1].removeprefix("block")) for p in target.paths("params/block")}
  return max(found, default=0)


def check_num_blocks(source: str, name: str, target: Target, theirs: int) -> None:
  if theirs != num_blocks(target):
    raise mismatch(source, name, f"{theirs} blocks", f"{num_blocks(target)}")


def has(target: Target, prefix: str) -> bool:
  return bool(target.paths(f"params/{prefix}/"))


def put_torch_conv_bn(target: Target, ours: str, src: SourceWeights, conv: str,
                      bn: str) -> None:
  """torch Conv2d `conv` + BatchNorm2d `bn` into our ConvNormAct `ours`."""
  put_conv(target, f"{ours}/conv", torch_conv_kernel(src.take(f"{conv}.weight")))
  put_torch_norm(target, f"{ours}/norm", src, bn)


def put_torch_conv1x1_bias(target: Target, ours: str, src: SourceWeights, key: str,
                           linear: bool = False) -> None:
  """A biased 1x1 Conv2d (or a Linear on pooled features) into our biased 1x1 `Conv`."""
  w = src.take(f"{key}.weight")
  kernel = torch_dense_kernel(w)[None, None] if linear else torch_conv_kernel(w)
  put_conv(target, ours, kernel, src.take(f"{key}.bias"))


def put_torch_inverted_residuals(name: str, target: Target, src: SourceWeights,
                                 prefixes: Sequence[str], split_project: bool) -> None:
  """torchvision InvertedResidual / MBConv sequences into our `block<i>`s.

  `prefixes[i]` holds block i + 1's Sequential ('features.3.block'): expand (if ours
  has one), depthwise, squeeze-excite `fc1`/`fc2` (if ours has one), project, each a
  Conv2dNormActivation `<j>.0`/`<j>.1`, except MobileNet v2's project, which is a bare
  conv `<j>` and BatchNorm `<j+1>` (`split_project`).
  """
  check_num_blocks("torchvision", name, target, len(prefixes))
  for i, theirs in enumerate(prefixes):
    ours, j = f"block{i + 1}", 0
    for part in ("expand", "depthwise"):
      if part == "depthwise" or has(target, f"{ours}/expand"):
        put_torch_conv_bn(target, f"{ours}/{part}", src, f"{theirs}.{j}.0", f"{theirs}.{j}.1")
        j += 1
    if has(target, f"{ours}/se"):
      put_torch_conv1x1_bias(target, f"{ours}/se/reduce", src, f"{theirs}.{j}.fc1")
      put_torch_conv1x1_bias(target, f"{ours}/se/expand", src, f"{theirs}.{j}.fc2")
      j += 1
    if split_project:
      put_torch_conv_bn(target, f"{ours}/project", src, f"{theirs}.{j}", f"{theirs}.{j + 1}")
    else:
      put_torch_conv_bn(target, f"{ours}/project", src, f"{theirs}.{j}.0", f"{theirs}.{j}.1")


def indexed(keys, prefix: str) -> list[int]:
  """Sorted distinct integers i of keys '<prefix><i>.<rest>'."""
  out = set()
  for k in keys:
    if k.startswith(prefix):
      head = k[len(prefix):].split(".", 1)[0]
      if head.isdigit():
        out.add(int(head))
  return sorted(out)


def _keras():
  from cnn_jax.convert import keras_module
  return keras_module()


def keras_layers_of(model, *types: str) -> list:
  """The model's layers whose class name is one of `types`, in model order."""
  return [layer for layer in model.layers if type(layer).__name__ in types]


def keras_bn_overrides(name: str, model) -> dict[str, float]:
  """`bn_epsilon` / `bn_momentum` of the Keras model's BatchNormalization layers (one
  setting for all of them, with scale and center, or an error)."""
  settings = {(float(l.epsilon), float(l.momentum), bool(l.scale), bool(l.center))
              for l in keras_layers_of(model, "BatchNormalization")}
  if len(settings) != 1:
    raise ValueError(f"Keras {name}: BatchNormalization layers disagree on (epsilon, "
                     f"momentum, scale, center): {sorted(settings)}; ours has one setting")
  epsilon, momentum, scale, center = settings.pop()
  if not (scale and center):
    raise ValueError(f"Keras {name}: BatchNormalization without scale/center; ours has both")
  return {"bn_epsilon": epsilon, "bn_momentum": momentum}


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TF 'SAME' (low, high) padding along one axis."""
  total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def keras_check_same_padding(name: str, model) -> None:
  """Raises unless every Keras conv pads like TF 'SAME' (see the module docstring): a
  'same' conv, a 1x1 'valid' conv, or a ZeroPadding2D + 'valid' conv whose pads are
  'SAME's at the built size (an even size where the size is dynamic)."""
  previous = None
  for layer in model.layers:
    if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D"):
      kernel, stride = tuple(layer.kernel_size), tuple(layer.strides)
      if layer.padding == "valid" and kernel != (1, 1):
        if type(previous).__name__ != "ZeroPadding2D":
          raise ValueError(f"Keras {name}: {layer.name} is a 'valid' {kernel} conv without "
                           "ZeroPadding2D; ours pads every conv")
        sizes = tuple(previous.input.shape[1:3])
        pads = tuple(tuple(int(v) for v in p) for p in previous.padding)
        want = tuple(_same_pads(n if n is not None else 64, k, s)  # dynamic: an even size
                     for n, k, s in zip(sizes, kernel, stride))
        if pads != want:
          raise ValueError(f"Keras {name}: {previous.name} pads {pads} on a {sizes} map, "
                           f"TF 'SAME' (ours) would pad {want}")
    previous = layer


def keras_input_normalisation(name: str, model, src: SourceWeights,
                              default: tuple[tuple[float, ...], tuple[float, ...]]
                              ) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(mean, std) of the Rescaling / Normalization layers in front of the first conv.

  They map the raw 0-255 image X to scale * X + offset per channel; with X = 255 * rgb01
  that is (rgb01 - mean) / std for std = 1 / (255 * scale), mean = -offset * std.
  `default` is returned when the model embeds no preprocessing.
  """
  scale, offset, found = np.ones(3), np.zeros(3), False

  def per_channel(value, what: str) -> np.ndarray:
    v = np.asarray(value, np.float64)
    if v.size == 1:
      return np.full(3, float(v.reshape(())))
    if v.size == 3 and v.shape[-1] == 3:
      return v.reshape(3)
    raise ValueError(f"Keras {name}: {what} of shape {v.shape} is not a per-channel affine "
                     "map of RGB inputs; ours can only express one as mean/std")

  for layer in model.layers:
    kind = type(layer).__name__
    if kind in ("Conv2D", "DepthwiseConv2D"):
      break
    if kind == "Rescaling":
      s = per_channel(layer.scale, f"{layer.name}.scale")
      o = per_channel(layer.offset, f"{layer.name}.offset")
      scale, offset, found = scale * s, offset * s + o, True
    elif kind == "Normalization":
      axis = tuple(a % 4 for a in layer.axis)
      if axis != (3,):
        raise ValueError(f"Keras {name}: {layer.name} normalises over axes {layer.axis}, "
                         "not the channels; ours can only express a per-channel mean/std")
      # `call` uses the constants `mean` / `variance` (set from the variables when weights
      # are loaded, or from the constructor); the variables only count as converted.
      for v in layer.weights:
        src.take(v.path)
      mean = per_channel(layer.mean, f"{layer.name}.mean")
      variance = per_channel(layer.variance, f"{layer.name}.variance")
      std = np.maximum(np.sqrt(variance), _keras().backend.epsilon())
      if layer.invert:  # x * std + mean
        scale, offset = scale * std, offset * std + mean
      else:
        scale, offset = scale / std, (offset - mean) / std
      found = True
    elif kind not in ("InputLayer", "ZeroPadding2D"):
      raise ValueError(f"Keras {name}: unexpected {kind} layer {layer.name!r} before the "
                       "first conv; ours can only express per-channel affine preprocessing")
  if not found:
    return default
  if np.any(scale == 0):
    raise ValueError(f"Keras {name}: the embedded preprocessing scales a channel by 0")
  std = 1.0 / (255.0 * scale)
  mean = -offset * std
  return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def put_keras_conv_bn(target: Target, ours: str, src: SourceWeights, conv: str, bn: str,
                      depthwise: bool = False) -> None:
  """Keras Conv2D / DepthwiseConv2D `conv` + BatchNormalization `bn` into ConvNormAct."""
  kernel = src.take(f"{conv}/kernel")
  put_conv(target, f"{ours}/conv", keras_depthwise_kernel(kernel) if depthwise else kernel)
  put_keras_norm(target, f"{ours}/norm", src, bn)


def put_keras_conv1x1_bias(target: Target, ours: str, src: SourceWeights, conv: str,
                           dense: bool = False) -> None:
  """A biased Keras 1x1 Conv2D into our biased 1x1 `Conv` (or, `dense`, our Dense)."""
  kernel = src.take(f"{conv}/kernel")
  if dense:
    kernel = kernel.reshape(kernel.shape[-2:])
  put_conv(target, ours, kernel, src.take(f"{conv}/bias"))


def put_keras_inverted_residuals(name: str, target: Target, src: SourceWeights,
                                 prefixes: Sequence[str],
                                 names: dict[str, tuple[str, str]]) -> None:
  """Keras inverted-residual blocks into our `block<i>`s: `prefixes[i]` is block i + 1's
  layer-name prefix, `names` maps our parts ('expand', 'depthwise', 'project': conv and
  BN; 'se': reduce and expand conv) to the Keras layer-name suffixes."""
  check_num_blocks("keras", name, target, len(prefixes))
  for i, p in enumerate(prefixes):
    ours = f"block{i + 1}"
    for part in ("expand", "depthwise", "project"):
      if part != "expand" or has(target, f"{ours}/expand"):
        conv, bn = names[part]
        put_keras_conv_bn(target, f"{ours}/{part}", src, p + conv, p + bn,
                          depthwise=part == "depthwise")
    if has(target, f"{ours}/se"):
      reduce, expand = names["se"]
      put_keras_conv1x1_bias(target, f"{ours}/se/reduce", src, p + reduce)
      put_keras_conv1x1_bias(target, f"{ours}/se/expand", src, p + expand)


def require_top(name: str, src: SourceWeights, key: str) -> None:
  if key not in src:
    raise ValueError(f"Keras {name} has no {key.split('/')[0]!r} layer: build it with "
                     "include_top=True (ours always has the classifier)")


# --- torchvision -----------------------------------------------------------------------

@register("torchvision", TORCHVISION)
def from_torchvision(name: str, src: SourceWeights) -> Converted:
  """torchvision `features.0` stem, `features.<1..n>` inverted residuals (`.conv` in v2,
  `.block` in v3), `features.<n+1>` last 1x1 conv; classifier `classifier.1` (v2) or
  `classifier.0` (our v3 `head_fc`) + `classifier.3`."""
  v3 = "classifier.3.weight" in src
  if v3 != name.startswith("mobilenet_v3"):
    kinds = ("MobileNet v3's two-Linear classifier", "MobileNet v2's one-Linear classifier")
    raise mismatch("torchvision", name, kinds[0] if v3 else kinds[1],
                   kinds[1] if v3 else kinds[0])
  fc = "classifier.3" if v3 else "classifier.1"
  num_classes = src.take(f"{fc}.weight").shape[0]
  overrides = {"bn_epsilon": 1e-3, "bn_momentum": 0.99} if v3 else \
              {"bn_epsilon": 1e-5, "bn_momentum": 0.9}
  target = Target(models.create(name, num_classes=num_classes, **overrides), _TARGET_SIZE)

  features = indexed(src.keys(), "features.")
  put_torch_conv_bn(target, "stem_conv", src, "features.0.0", "features.0.1")
  body = "block" if v3 else "conv"
  put_torch_inverted_residuals(name, target, src,
                               [f"features.{i}.{body}" for i in features[1:-1]],
                               split_project=not v3)
  last = features[-1]
  put_torch_conv_bn(target, "head_conv", src, f"features.{last}.0", f"features.{last}.1")
  if v3:
    put_torch_conv1x1_bias(target, "head_fc", src, "classifier.0", linear=True)
  target.put("params/head/fc/kernel", torch_dense_kernel(src.take(f"{fc}.weight")))
  target.put("params/head/fc/bias", src.take(f"{fc}.bias"))
  return Converted(name=name, source="torchvision", overrides=overrides,
                   variables=target.variables(), num_classes=num_classes,
                   mean=IMAGENET_MEAN, std=IMAGENET_STD)


# --- Keras -----------------------------------------------------------------------------

def _keras_common(name: str, src: SourceWeights, default_norm) -> tuple[dict[str, Any], Any]:
  model = src.model
  keras_check_same_padding(name, model)
  overrides = {"padding": "SAME", **keras_bn_overrides(name, model)}
  return overrides, keras_input_normalisation(name, model, src, default_norm)


@register("keras", {"mobilenet_v1": KERAS["mobilenet_v1"]})
def from_keras_v1(name: str, src: SourceWeights) -> Converted:
  """Keras MobileNet: `conv1`, `conv_dw_<k>` / `conv_pw_<k>` (+ `_bn`) for k = 1..13,
  classifier 1x1 conv `conv_preds`. ReLU6 throughout."""
  require_top(name, src, "conv_preds/kernel")
  overrides, (mean, std) = _keras_common(name, src, (TF_MEAN, TF_STD))
  overrides["act"] = "relu6"
  num_classes = src.take("conv_preds/kernel").shape[-1]
  target = Target(models.create(name, num_classes=num_classes, **overrides), _TARGET_SIZE)
  put_keras_conv_bn(target, "stem_conv", src, "conv1", "conv1_bn")
  blocks = indexed([k.replace("/", ".") for k in src.keys()], "conv_dw_")
  check_num_blocks("keras", name, target, len(blocks))
  for k in blocks:
    put_keras_conv_bn(target, f"block{k}/depthwise", src, f"conv_dw_{k}", f"conv_dw_{k}_bn",
                      depthwise=True)
    put_keras_conv_bn(target, f"block{k}/pointwise", src, f"conv_pw_{k}", f"conv_pw_{k}_bn")
  put_keras_conv1x1_bias(target, "head/fc", src, "conv_preds", dense=True)
  return Converted(name=name, source="keras", overrides=overrides,
                   variables=target.variables(), num_classes=num_classes, mean=mean, std=std)


_KERAS_V2_NAMES = {"expand": ("expand", "expand_BN"), "depthwise": ("depthwise", "depthwise_BN"),
                   "project": ("project", "project_BN")}


@register("keras", {"mobilenet_v2": KERAS["mobilenet_v2"]})
def from_keras_v2(name: str, src: SourceWeights) -> Converted:
  """Keras MobileNetV2: `Conv1`/`bn_Conv1`, `expanded_conv_*` then `block_<b>_*`
  (b = 1..16), `Conv_1`/`Conv_1_bn`, Dense `predictions`."""
  require_top(name, src, "predictions/kernel")
  overrides, (mean, std) = _keras_common(name, src, (TF_MEAN, TF_STD))
  num_classes = src.take("predictions/kernel").shape[-1]
  target = Target(models.create(name, num_classes=num_classes, **overrides), _TARGET_SIZE)
  put_keras_conv_bn(target, "stem_conv", src, "Conv1", "bn_Conv1")
  later = indexed([k.replace("_", ".", 2) for k in src.keys()], "block.")
  prefixes = ["expanded_conv_"] + [f"block_{b}_" for b in later]
  put_keras_inverted_residuals(name, target, src, prefixes, _KERAS_V2_NAMES)
  put_keras_conv_bn(target, "head_conv", src, "Conv_1", "Conv_1_bn")
  put_conv(target, "head/fc", src.take("predictions/kernel"), src.take("predictions/bias"))
  return Converted(name=name, source="keras", overrides=overrides,
                   variables=target.variables(), num_classes=num_classes, mean=mean, std=std)


_KERAS_V3_NAMES = {"expand": ("expand", "expand_bn"), "depthwise": ("depthwise", "depthwise_bn"),
                   "project": ("project", "project_bn"),
                   "se": ("squeeze_excite_conv", "squeeze_excite_conv_1")}


@register("keras", {"mobilenet_v3_large": KERAS["mobilenet_v3_large"],
                    "mobilenet_v3_small": KERAS["mobilenet_v3_small"]})
def from_keras_v3(name: str, src: SourceWeights) -> Converted:
  """Keras MobileNetV3Large / Small (not `minimalistic`): `conv`/`conv_bn`,
  `expanded_conv_*` then `expanded_conv_<b>_*`, `conv_1`/`conv_1_bn`, the pooled
  hard-swish 1x1 conv `conv_2` (our `head_fc`) and the 1x1 classifier conv `logits`."""
  require_top(name, src, "logits/kernel")
  overrides, (mean, std) = _keras_common(name, src, (TF_MEAN, TF_STD))
  num_classes = src.take("logits/kernel").shape[-1]
  target = Target(models.create(name, num_classes=num_classes, **overrides), _TARGET_SIZE)
  put_keras_conv_bn(target, "stem_conv", src, "conv", "conv_bn")
  later = indexed([k.removeprefix("expanded_conv_").replace("_", ".", 1) for k in src.keys()
                   if k.startswith("expanded_conv_")], "")
  prefixes = ["expanded_conv_"] + [f"expanded_conv_{b}_" for b in later]
  put_keras_inverted_residuals(name, target, src, prefixes, _KERAS_V3_NAMES)
  put_keras_conv_bn(target, "head_conv", src, "conv_1", "conv_1_bn")
  put_keras_conv1x1_bias(target, "head_fc", src, "conv_2")
  put_keras_conv1x1_bias(target, "head/fc", src, "logits", dense=True)
  return Converted(name=name, source="keras", overrides=overrides,
                   variables=target.variables(), num_classes=num_classes, mean=mean, std=std)
