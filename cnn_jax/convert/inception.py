"""GoogLeNet and Inception weights from torchvision and Keras applications.

torchvision (`googlenet` -> googlenet_torchvision, `inception_v3` -> inception_v3): the
state dict's module names map one to one onto ours (tables below). BN eps is 1e-3 and
the average-pool branches count the padding, as in our layouts; the auxiliary heads are
converted when the state dict has them (`aux_logits=True` in torchvision) and left out
(`aux_logits=False`) when it does not. GoogLeNet's aux FC 1 reads torch's NCHW flatten of
the 4x4x128 map, so its rows are permuted to our NHWC flatten.

Input: torchvision's released GoogLeNet and Inception v3 weights run with
`transform_input=True` (the builders force it with pretrained weights), which maps an
ImageNet-normalised input back to (rgb01 - 0.5) / 0.5 before the first conv. That is what
the weights expect, so `mean = std = 0.5` here; feed torchvision ImageNet-normalised input
and ours `(rgb01 - 0.5) / 0.5` and the logits agree. (A state dict trained with
`transform_input=False` expects ImageNet mean/std instead; the file cannot tell.)

Keras (`InceptionV3` -> inception_v3, `InceptionResNetV2` -> inception_resnet_v2):
'tf' preprocessing (`x / 127.5 - 1`), so `mean = std = 0.5`. The Keras layer names are
auto-generated counters, so layers are paired by the order the network computes them:
a post-order walk of the Keras graph from its output, visiting each layer's inputs in
argument order (branch 0 of a concatenation before branch 1, ...), against the order in
which our model calls its convs, BNs and dense layers. Every pair is checked (kind,
stride, padding, shape; residual scales). Keras conventions become overrides: BN without
scale (`bn_scale=False`), its epsilon (1e-3), no auxiliary head, and TF 'SAME' average
pooling that leaves the padding out of the mean (`pool_count_include_pad=False`). Keras's
stride-1 'SAME' convs have odd kernels, so they pad symmetrically like ours; its strided
convs and pools are 'VALID', as ours.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import models
from cnn_jax.convert.common import (SOURCE_BUILDERS, Converted, SourceWeights, Target,
                                    flatten_torch_fc, put_conv, put_norm, put_torch_norm,
                                    register, torch_conv_kernel, torch_dense_kernel)
from cnn_jax.layers.conv import BatchNorm, Conv, resolve_padding
from cnn_jax.layers.steps import InceptionResidual
from cnn_jax.models.inception import GOOGLENET_AUX_TORCHVISION, GOOGLENET_MODULES

TF_MEAN = TF_STD = (0.5, 0.5, 0.5)  # [0, 1] -> [-1, 1]
TORCHVISION_BN_EPSILON = 1e-3      # BasicConv2d in torchvision's googlenet / inception


# --- torchvision -----------------------------------------------------------------------

def _torch_conv_bn(src: SourceWeights, tgt: Target, theirs: str, ours: str) -> None:
  """torchvision BasicConv2d (`theirs.conv`, `theirs.bn`) -> our ConvNormAct `ours`."""
  put_conv(tgt, f"{ours}/conv", torch_conv_kernel(src.take(f"{theirs}.conv.weight")))
  put_torch_norm(tgt, f"{ours}/norm", src, f"{theirs}.bn")


def _torch_dense(src: SourceWeights, tgt: Target, theirs: str, ours: str,
                 kernel: np.ndarray | None = None) -> None:
  w = src.take(f"{theirs}.weight")
  tgt.put(f"params/{ours}/kernel", torch_dense_kernel(w) if kernel is None else kernel)
  tgt.put(f"params/{ours}/bias", src.take(f"{theirs}.bias"))


def _torch_target(name: str, src: SourceWeights, aux_key: str, **overrides):
  """Our model for a torchvision state dict: num_classes from `fc`, aux heads iff the
  state dict has `aux_key`."""
  num_classes = int(src.take("fc.weight").shape[0])  # re-taken below; take is idempotent
  overrides = dict(overrides, bn_epsilon=TORCHVISION_BN_EPSILON, aux_logits=aux_key in src)
  model = models.create(name, num_classes=num_classes, **overrides)
  return Target(model, models.spec(name).min_input_size), num_classes, overrides


# torchvision GoogLeNet Inception module: branch1 = 1x1; branch2 = 1x1, 3x3; branch3 =
# 1x1, "5x5" (a 3x3); branch4 = max pool, 1x1. Ours: branch{i}_{step}.
_GOOGLENET_BRANCHES = {"branch1": "branch0_0", "branch2.0": "branch1_0",
                       "branch2.1": "branch1_1", "branch3.0": "branch2_0",
                       "branch3.1": "branch2_1", "branch4.1": "branch3_1"}


@register("torchvision", {"googlenet_torchvision": "googlenet"})
def googlenet_from_torchvision(name: str, src: SourceWeights) -> Converted:
  """torchvision `googlenet` (see the module docstring for the input convention)."""
  tgt, num_classes, overrides = _torch_target(name, src, "aux1.conv.conv.weight")
  for theirs, ours in (("conv1", "conv1"), ("conv2", "conv2_reduce"), ("conv3", "conv2")):
    _torch_conv_bn(src, tgt, theirs, ours)
  for key in GOOGLENET_MODULES:
    for theirs, ours in _GOOGLENET_BRANCHES.items():
      _torch_conv_bn(src, tgt, f"inception{key}.{theirs}", f"inception_{key}/{ours}")
  if overrides["aux_logits"]:
    grid = GOOGLENET_AUX_TORCHVISION.grid
    for i in (1, 2):
      _torch_conv_bn(src, tgt, f"aux{i}.conv", f"aux_head{i}/conv0")
      # fc1 reads torch.flatten of N x 128 x 4 x 4 (c, h, w order); ours flattens h, w, c.
      fc1 = src.take(f"aux{i}.fc1.weight")
      kernel = flatten_torch_fc(fc1, grid, grid, fc1.shape[1] // grid**2)
      _torch_dense(src, tgt, f"aux{i}.fc1", f"aux_head{i}/fc1",
                   kernel.reshape(-1, fc1.shape[0]))
      _torch_dense(src, tgt, f"aux{i}.fc2", f"aux_head{i}/fc")
  _torch_dense(src, tgt, "fc", "head/fc")
  return Converted(name=name, source="torchvision", overrides=overrides,
                   variables=tgt.variables(), num_classes=num_classes, mean=TF_MEAN,
                   std=TF_STD)


# torchvision Inception3 block -> our step names, per block kind.
_V3_STEM = {"Conv2d_1a_3x3": "conv_1a", "Conv2d_2a_3x3": "conv_2a",
            "Conv2d_2b_3x3": "conv_2b", "Conv2d_3b_1x1": "conv_3b",
            "Conv2d_4a_3x3": "conv_4a"}
_V3_BLOCKS = {
    "A": {"branch1x1": "branch0_0", "branch5x5_1": "branch1_0", "branch5x5_2": "branch1_1",
          "branch3x3dbl_1": "branch2_0", "branch3x3dbl_2": "branch2_1",
          "branch3x3dbl_3": "branch2_2", "branch_pool": "branch3_1"},
    "B": {"branch3x3": "branch0_0", "branch3x3dbl_1": "branch1_0",
          "branch3x3dbl_2": "branch1_1", "branch3x3dbl_3": "branch1_2"},
    "C": {"branch1x1": "branch0_0", "branch_pool": "branch3_1",
          **{f"branch7x7_{j + 1}": f"branch1_{j}" for j in range(3)},
          **{f"branch7x7dbl_{j + 1}": f"branch2_{j}" for j in range(5)}},
    "D": {"branch3x3_1": "branch0_0", "branch3x3_2": "branch0_1",
          **{f"branch7x7x3_{j + 1}": f"branch1_{j}" for j in range(4)}},
    # The 1x3 / 3x1 split is a nested module: its two convs are its branch0_0, branch1_0.
    "E": {"branch1x1": "branch0_0", "branch3x3_1": "branch1_0",
          "branch3x3_2a": "branch1_1/branch0_0", "branch3x3_2b": "branch1_1/branch1_0",
          "branch3x3dbl_1": "branch2_0", "branch3x3dbl_2": "branch2_1",
          "branch3x3dbl_3a": "branch2_2/branch0_0", "branch3x3dbl_3b": "branch2_2/branch1_0",
          "branch_pool": "branch3_1"},
}
_V3_MIXED = {"Mixed_5b": "A", "Mixed_5c": "A", "Mixed_5d": "A", "Mixed_6a": "B",
             "Mixed_6b": "C", "Mixed_6c": "C", "Mixed_6d": "C", "Mixed_6e": "C",
             "Mixed_7a": "D", "Mixed_7b": "E", "Mixed_7c": "E"}


@register("torchvision", {"inception_v3": "inception_v3"})
def inception_v3_from_torchvision(name: str, src: SourceWeights) -> Converted:
  """torchvision `inception_v3` (see the module docstring for the input convention)."""
  tgt, num_classes, overrides = _torch_target(name, src, "AuxLogits.conv0.conv.weight",
                                              pool_count_include_pad=True)
  for theirs, ours in _V3_STEM.items():
    _torch_conv_bn(src, tgt, theirs, ours)
  for block, kind in _V3_MIXED.items():
    for theirs, ours in _V3_BLOCKS[kind].items():
      _torch_conv_bn(src, tgt, f"{block}.{theirs}", f"{block.lower()}/{ours}")
  if overrides["aux_logits"]:
    _torch_conv_bn(src, tgt, "AuxLogits.conv0", "aux_head1/conv0")
    _torch_conv_bn(src, tgt, "AuxLogits.conv1", "aux_head1/conv1")
    _torch_dense(src, tgt, "AuxLogits.fc", "aux_head1/fc")
  _torch_dense(src, tgt, "fc", "head/fc")
  return Converted(name=name, source="torchvision", overrides=overrides,
                   variables=tgt.variables(), num_classes=num_classes, mean=TF_MEAN,
                   std=TF_STD)


# --- Keras -----------------------------------------------------------------------------

def _keras_layers_in_call_order(keras_model) -> list:
  """The layers of a functional Keras model in a post-order walk from its outputs, each
  layer's inputs visited in argument order (iterative: Inception-ResNet is ~800 deep)."""
  done, order = set(), []
  roots = [t._keras_history for t in keras_model.outputs]
  stack = [(h.operation._inbound_nodes[h.node_index], False) for h in reversed(roots)]
  while stack:
    node, expanded = stack.pop()
    if id(node) in done:
      continue
    if expanded:
      done.add(id(node))
      order.append(node.operation)
      continue
    stack.append((node, True))
    for parent in reversed(node.parent_nodes):
      if id(parent) not in done:
        stack.append((parent, False))
  return order


def _our_layers_in_call_order(model, image_size: int) -> list[tuple[str, nn.Module]]:
  """(path, module) of our convs, BNs, dense layers and residual blocks in call order."""
  calls = []

  def record(next_fun, args, kwargs, context):
    m = context.module
    if context.method_name != "__call__":
      return next_fun(*args, **kwargs)
    if isinstance(m, (Conv, BatchNorm, nn.Dense)):
      calls.append(("/".join(m.path), m))
    out = next_fun(*args, **kwargs)
    if isinstance(m, InceptionResidual):  # its sum follows its convs, as Keras's does
      calls.append(("/".join(m.path), m))
    return out

  x = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  with nn.intercept_methods(record):
    jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
  return calls


def _keras_conv_padding(layer) -> Any:
  """A Keras Conv2D's padding as explicit (low, high) pairs, where it has them."""
  cfg = layer.get_config()
  kernel, strides = tuple(cfg["kernel_size"]), tuple(cfg["strides"])
  if cfg["padding"] == "valid":
    return ((0, 0), (0, 0))
  if all(s == 1 and k % 2 for k, s in zip(kernel, strides)):
    return tuple((k // 2, k // 2) for k in kernel)  # stride-1 'same', odd kernel
  return "SAME"  # TF's stride-dependent asymmetric rule


def _check_uniform(values: list, what: str):
  if len(set(values)) != 1:
    raise ValueError(f"the Keras model mixes {what} {sorted(set(values))}; our model has "
                     "one value for the whole network")
  return values[0]


@register("keras", {"inception_v3": "InceptionV3",
                    "inception_resnet_v2": "InceptionResNetV2"})
def inception_from_keras(name: str, src: SourceWeights) -> Converted:
  """Keras `InceptionV3` / `InceptionResNetV2` (see the module docstring)."""
  keras_model = src.model
  kinds = ("Conv2D", "BatchNormalization", "Dense", "CustomScaleLayer")
  layers = []
  for layer in _keras_layers_in_call_order(keras_model):
    kind = type(layer).__name__
    if kind in ("Rescaling", "Normalization"):
      raise ValueError(f"the Keras model embeds preprocessing ({layer.name}); "
                       "keras.applications' Inception models do not")
    if kind in kinds:
      layers.append(layer)
    elif layer.weights:
      raise ValueError(f"Keras layer {layer.name} ({kind}) has no counterpart in {name}")
  if not layers or type(layers[-1]).__name__ != "Dense":
    raise ValueError("the Keras model has no classifier (built with include_top=False?); "
                     f"{name} needs its 'predictions' layer")
  bns = [l for l in layers if type(l).__name__ == "BatchNormalization"]
  if not all(l.center for l in bns):
    raise ValueError("a Keras BatchNormalization has center=False; ours always has a bias")
  overrides = {"bn_epsilon": float(_check_uniform([l.epsilon for l in bns], "BN epsilons")),
               "bn_scale": bool(_check_uniform([l.scale for l in bns], "BN scale settings")),
               "pool_count_include_pad": False}
  if models.create(name).aux_logits:
    overrides["aux_logits"] = False  # Keras applications have no auxiliary head
  num_classes = int(layers[-1].units)
  model = models.create(name, num_classes=num_classes, **overrides)
  size = models.spec(name).min_input_size
  tgt = Target(model, size)
  ours = _our_layers_in_call_order(model, size)
  if len(ours) != len(layers):
    raise ValueError(f"the Keras model has {len(layers)} conv / BN / dense / residual "
                     f"layers, {name} has {len(ours)}: is it keras.applications."
                     f"{SOURCE_BUILDERS['keras'][name]}?")
  for (path, module), layer in zip(ours, layers):
    _keras_pair(src, tgt, path, module, layer, name)
  return Converted(name=name, source="keras", overrides=overrides,
                   variables=tgt.variables(), num_classes=num_classes, mean=TF_MEAN,
                   std=TF_STD)


def _keras_pair(src: SourceWeights, tgt: Target, path: str, module, layer, name: str):
  """Copies one Keras layer into our module at `path`, checking that they are the same
  operation."""
  kind = type(layer).__name__
  where = f"Keras layer {layer.name} ({kind}) vs our {path}"
  if isinstance(module, Conv) and kind == "Conv2D":
    k = tuple(layer.get_config()["kernel_size"])
    strides = tuple(layer.get_config()["strides"])
    ours_pad = resolve_padding(module.padding, k)
    ours_pad = ((0, 0), (0, 0)) if ours_pad == "VALID" else ours_pad
    if strides != tuple(np.broadcast_to(module.strides, 2)) or \
        _keras_conv_padding(layer) != ours_pad:
      raise ValueError(f"{where}: strides {strides} / padding {_keras_conv_padding(layer)} "
                       f"differ from ours {module.strides} / {ours_pad}")
    tgt.put(f"params/{path}/kernel", src.take(layer.kernel.path))
    if layer.use_bias:
      tgt.put(f"params/{path}/bias", src.take(layer.bias.path))
  elif isinstance(module, BatchNorm) and kind == "BatchNormalization":
    put_norm(tgt, path, src.take(layer.gamma.path) if layer.scale else None,
             src.take(layer.beta.path), src.take(layer.moving_mean.path),
             src.take(layer.moving_variance.path))
  elif isinstance(module, nn.Dense) and kind == "Dense":
    tgt.put(f"params/{path}/kernel", src.take(layer.kernel.path))
    tgt.put(f"params/{path}/bias", src.take(layer.bias.path))
  elif isinstance(module, InceptionResidual) and kind == "CustomScaleLayer":
    if not np.isclose(float(layer.scale), module.scale):  # x + scale * residual
      raise ValueError(f"{where}: residual scale {layer.scale} != ours {module.scale}")
  else:
    raise ValueError(f"{where}: different layers at the same place; is the Keras model "
                     f"keras.applications.{SOURCE_BUILDERS['keras'][name]}?")
