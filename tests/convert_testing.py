"""Shared checks for the weight-conversion tests: random weights *and* random BatchNorm
statistics in the source model, the same NHWC batch into both, max |difference| of the
logits, and proof that the source's logits depend on the input at all. torchvision tests
skip when torch is absent; Keras runs on its JAX backend.

Two kinds of test use them. Per family and source, the logits are compared in CI for the
representatives: the smallest variant of each distinct block design. Their deeper or
wider siblings (the same block code repeated more often, or with more channels) compare
logits only in `make test-all` (`full_size`); in CI `assert_weights_mapped` checks each
sibling's mapping without compiling the network: the variable tree equals what our model
initialises, every source tensor lands in exactly one of our variables with its values
unchanged, and named tensors sit where they belong in the right layout.

Cost on 2 CPU cores is compilation, not arithmetic (a network has dozens to hundreds of
distinct tensor shapes). So both JAX forward passes are jitted whole with XLA's backend
optimisation off (FAST_COMPILE: a third of the compile time, the same arithmetic), and
Keras models draw their initial weights from numpy instead of compiling one jax.random
program per variable shape. FAST_COMPILE also keeps XLA from handing the forward pass
to YNNPACK (cnn_jax.platform's CPU setting leaves its element-wise and reduction fusions
on): with jaxlib 0.10.2 a forward-only program becomes one YNNPACK fusion of the whole
network, which ran VGG-11 at 224 px in 5-7 s instead of 0.3 s (the VGG tests took 3-4 s
longer each); at 32-75 px it makes little difference."""

from __future__ import annotations

import collections
import contextlib
import os
import sys

import jax
import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")

ATOL = 1e-4  # the bound conversions are held to: max |logit difference| in float32
# A wrong mapping moves logits by about their own size: keep that far above the bound.
MIN_LOGIT_SCALE = 100 * ATOL
# The batch's images must give logits that differ by more than this fraction of the
# logit scale, so that a source (or a conversion) that ignores its input cannot match.
MIN_INPUT_EFFECT = 0.01
FAST_COMPILE = {"xla_backend_optimization_level": 0}
if "ynn_fusion_type" in os.environ.get("XLA_FLAGS", ""):  # set by cnn_jax.platform, where
  # this jaxlib has the option (an unknown one fails the compile): no YNNPACK fusions.
  FAST_COMPILE["xla_cpu_experimental_ynn_fusion_type"] = ""


def names(all_names, slow=(), full_size=()) -> list:
  """pytest parameters: `all_names`, those in `slow` marked slow (> ~20 s on 2 cores), those
  in `full_size` marked full_size and slow (only in `make test-all`, not in `make
  test-fast` either, as tests/test_models_*.py mark theirs: a sibling whose mapping CI
  checks with `assert_weights_mapped`)."""
  unknown = (set(slow) | set(full_size)) - set(all_names)
  assert not unknown, f"not among the parameters: {sorted(unknown)}"
  out = []
  for n in all_names:
    marks = ([pytest.mark.slow] if n in slow or n in full_size else []) + \
            ([pytest.mark.full_size] if n in full_size else [])
    out.append(pytest.param(n, marks=marks) if marks else n)
  return out


def input_batch(size: int, batch: int = 2, seed: int = 0) -> np.ndarray:
  """Inputs of standard scale (already normalised), NHWC float32."""
  return np.random.default_rng(seed).standard_normal((batch, size, size, 3)).astype(np.float32)


def _compiled(fn, *args) -> np.ndarray:
  """fn(*args) as one jitted program, compiled with FAST_COMPILE."""
  return np.asarray(jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)(*args))


def ours_logits(result, x: np.ndarray) -> np.ndarray:
  """Logits of our model converted into `result` (a cnn_jax.convert.Converted), in eval
  mode, as one jitted program (eager apply compiles op by op, ~6x slower)."""
  model = result.model()
  return _compiled(lambda v, x: model.apply(v, x, train=False), result.variables, x)


# --- torchvision -----------------------------------------------------------------------

def torchvision_model(builder: str, seed: int = 0, **kwargs):
  """torchvision.models.<builder>(weights=None) with randomised BN statistics, in eval mode."""
  torch = pytest.importorskip("torch")
  tv = pytest.importorskip("torchvision")
  torch.manual_seed(seed)
  model = getattr(tv.models, builder)(weights=None, **kwargs)
  gen = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
        m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
        m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
        if m.affine:
          m.weight.copy_(0.8 + 0.4 * torch.rand(m.weight.shape, generator=gen))
          m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
  return model.eval()


def he_scaled_torch(model, gain: float = 2.0):
  """Every conv's weights rescaled to std sqrt(gain / fan_in): He's (ReLU-preserving) by
  default. Under
  torch's default init (variance 1 / (3 fan_in)), or with the random BN statistics
  mismatching the activations, 20+ conv-BN-activation layers can shrink the input's trace
  in the logits to ~1e-7 of their scale, and a wrong stem would still "match" to 1e-4;
  assert_logits_match checks that the input is seen."""
  import torch
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, torch.nn.Conv2d):  # weight[0]: one output's (in / groups, kh, kw)
        m.weight.mul_((gain / m.weight[0].numel()) ** 0.5 / m.weight.std())
  return model


# Calibrated statistics of a small batch give some channels a near-zero variance, and
# dividing by it multiplies float32 rounding by up to 1/sqrt(eps); a floor of this
# fraction of the layer's mean variance keeps the comparison about the conversion.
VAR_FLOOR = 0.2


def calibrated_torch_bn(model, x_nhwc: np.ndarray, seed: int = 0):
  """BN running statistics set from one train-mode pass over `x_nhwc` (cumulative
  average), then perturbed (mean +- 0.1 std, variance x U[0.8, 1.2] + VAR_FLOOR x the
  layer's mean variance): random statistics
  that match the activations' scale, so BN neither erases the input (as statistics far
  from tiny activations do in deep nets like EfficientNet) nor is the identity."""
  import torch
  bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
  for m in bns:
    m.reset_running_stats()
    m.momentum = None
  model.train()
  with torch.no_grad():
    model(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))))
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in bns:
      std = m.running_var.sqrt()
      m.running_mean.add_(0.1 * std * torch.randn(std.shape, generator=gen))
      m.running_var.mul_(0.8 + 0.4 * torch.rand(std.shape, generator=gen))
      m.running_var.add_(VAR_FLOOR * m.running_var.mean())
  return model.eval()


def torch_logits(model, x_nhwc: np.ndarray) -> np.ndarray:
  import torch
  with torch.no_grad():
    out = model(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))))
  if isinstance(out, tuple):  # GoogLeNet / Inception v3 namedtuples in train mode
    out = out[0]
  return out.numpy()


# --- Keras -----------------------------------------------------------------------------

def to_device(value, dtype=None) -> jax.Array:
  """A numpy value as a JAX array (float32 unless `dtype`), by `jax.device_put`: Keras's
  `assign` and initialisers otherwise convert with `jnp.asarray`, which in this jaxlib
  compiles a copy program for every new shape (~10 ms each, 30-80 per model)."""
  return jax.device_put(np.asarray(value, dtype or np.float32))


@contextlib.contextmanager
def numpy_keras_initialisers(seed: int = 0):
  """Keras's random initialisers draw from numpy (same distributions), and its Zeros and
  Ones fill from numpy, while in the block:
  on the JAX backend each new variable shape otherwise compiles its own jax.random
  program, which dominates building a model on CPU. Where Keras's internals differ from
  what is patched here, the block runs with Keras's own initialisers (slower, as correct)."""
  try:
    from keras.src import backend
    random = backend.random
  except (ImportError, AttributeError):
    yield
    return
  rng = np.random.default_rng(seed)

  def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    return to_device(rng.uniform(minval, maxval, shape), dtype)

  def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    return to_device(mean + stddev * rng.standard_normal(shape), dtype)

  def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    z = rng.standard_normal(shape)  # redrawn beyond two standard deviations, as in Keras
    while (out := np.abs(z) > 2.0).any():
      z[out] = rng.standard_normal(int(out.sum()))
    return to_device(mean + stddev * z, dtype)

  # Zeros and Ones (biases, BatchNorm) from numpy too: `ops.zeros` compiles per shape.
  constant = lambda fill: lambda self, shape, dtype=None: to_device(np.full(shape, fill), dtype)
  patches = [(random, fn.__name__, fn) for fn in (uniform, normal, truncated_normal)]
  try:
    from keras.src.initializers import constant_initializers as init
    patches += [(init.Zeros, "__call__", constant(0.0)), (init.Ones, "__call__", constant(1.0))]
  except (ImportError, AttributeError):
    pass
  saved = []
  for owner, name, fn in patches:
    if hasattr(owner, name):
      saved.append((owner, name, getattr(owner, name)))
      setattr(owner, name, fn)
  try:
    yield
  finally:
    for owner, name, fn in saved:
      setattr(owner, name, fn)


def keras_model(builder: str, seed: int = 0, **kwargs):
  """keras.applications.<builder>(weights=None) with randomised BN statistics."""
  from cnn_jax.convert import keras_module
  keras = keras_module()
  keras.utils.set_random_seed(seed)
  if "tensorflow" in sys.modules:
    # set_random_seed also sets TF's global seed; with it at 0, TF's own get_seed fails on
    # the tensor seeds of the input pipeline's per-epoch shuffle (in later tests of the
    # same process). Nothing here uses TF's random ops.
    sys.modules["tensorflow"].random.set_seed(None)
  kwargs.setdefault("classifier_activation", None)  # logits, not softmax
  with numpy_keras_initialisers(seed):
    model = getattr(keras.applications, builder)(weights=None, **kwargs)
  rng = np.random.default_rng(seed + 1)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      for v in layer.weights:
        kind = v.path.rsplit("/", 1)[-1]
        shape = tuple(v.shape)
        value = {"gamma": 0.8 + 0.4 * rng.random(shape),
                 "beta": 0.1 * rng.standard_normal(shape),
                 "moving_mean": 0.1 * rng.standard_normal(shape),
                 "moving_variance": 0.5 + rng.random(shape)}[kind]
        v.assign(to_device(value))
  return model


def he_scaled_keras(model, gain: float = 2.0):
  """As `he_scaled_torch`, for Keras's (Glorot-uniform) Conv2D and DepthwiseConv2D."""
  import keras
  for layer in model.layers:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
      fan_in_dims = 2  # kernel (kh, kw, in, multiplier): each output sees kh * kw inputs
    elif isinstance(layer, keras.layers.Conv2D):
      fan_in_dims = 3  # kernel (kh, kw, in / groups, out)
    else:
      continue
    w = np.asarray(layer.kernel)
    layer.kernel.assign(to_device(w * (gain / np.prod(w.shape[:fan_in_dims])) ** 0.5 / w.std()))
  return model


def calibrated_keras_bn(model, x_nhwc: np.ndarray, seed: int = 0):
  """As `calibrated_torch_bn`, for Keras: one (jitted) training-mode call with every BN's
  momentum at 0 (so the moving statistics become the batch's), momentum restored, then
  perturbed."""
  import keras
  bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
  momenta = [l.momentum for l in bns]
  for layer in bns:
    layer.momentum = 0.0
  import jax
  trainable = [v.value for v in model.trainable_variables]
  non_trainable = [v.value for v in model.non_trainable_variables]
  step = jax.jit(lambda t, n, x: model.stateless_call(t, n, x, training=True)[1])
  updated = step.lower(trainable, non_trainable, np.asarray(x_nhwc, np.float32)).compile(
      compiler_options=FAST_COMPILE)(trainable, non_trainable, np.asarray(x_nhwc, np.float32))
  for v, value in zip(model.non_trainable_variables, updated):
    v.assign(value)
  rng = np.random.default_rng(seed)
  for layer, momentum in zip(bns, momenta):
    layer.momentum = momentum
    var = np.asarray(layer.moving_variance)
    layer.moving_mean.assign(to_device(np.asarray(layer.moving_mean)
                                       + 0.1 * np.sqrt(var) * rng.standard_normal(var.shape)))
    var = var * (0.8 + 0.4 * rng.random(var.shape))
    layer.moving_variance.assign(to_device(var + VAR_FLOOR * var.mean()))
  return model


def keras_logits(model, x_nhwc) -> np.ndarray:
  """Logits (keras_model builds with classifier_activation=None), as one jitted program:
  eager Keras-on-JAX compiles op by op, ~4x slower on a fresh model."""
  trainable = [v.value for v in model.trainable_variables]
  non_trainable = [v.value for v in model.non_trainable_variables]
  return _compiled(lambda t, n, x: model.stateless_call(t, n, x, training=False)[0],
                   trainable, non_trainable, np.asarray(x_nhwc, np.float32))


# --- the check -------------------------------------------------------------------------

def assert_logits_match(ours, theirs, atol: float = ATOL, rtol: float | None = None) -> float:
  """max |ours - theirs| <= atol (and <= rtol * logit scale if given), where the source's
  logits are far from zero (scale > MIN_LOGIT_SCALE) and depend on the input: the batch
  (>= 2 images) gives rows differing by > MIN_INPUT_EFFECT of the logit scale. Returns
  the max |difference|."""
  ours, theirs = np.asarray(ours, np.float32), np.asarray(theirs, np.float32)
  assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
  assert theirs.ndim >= 2 and theirs.shape[0] >= 2, \
      f"a batch of >= 2 images is needed to see that the logits depend on it: {theirs.shape}"
  diff = float(np.max(np.abs(ours - theirs)))
  scale = float(np.max(np.abs(theirs)))
  effect = float(np.max(np.abs(theirs[1:] - theirs[:1])))
  print(f"max |logit diff| {diff:.3g}, logit scale {scale:.3g}, "
        f"input effect {effect / max(scale, 1e-30):.3g} of scale")
  assert diff <= atol, f"max |logit difference| {diff:.3g} > {atol} (logit scale {scale:.3g})"
  if rtol is not None:
    assert diff <= rtol * scale, f"max |logit difference| {diff:.3g} > {rtol} x logit " \
                                 f"scale {scale:.3g}"
  assert scale > MIN_LOGIT_SCALE, \
      f"logit scale {scale:.3g} too small for the test to discriminate"
  assert effect > MIN_INPUT_EFFECT * scale, \
      f"the source's logits barely depend on the input: the images' rows differ by " \
      f"{effect:.3g}, the logit scale is {scale:.3g}"
  return diff


# --- the mapping check (no forward pass) -----------------------------------------------

# Layout changes a check's source tensor goes through to be ours (`assert_weights_mapped`),
# written out here rather than taken from the converter under test.
def same(w):
  return w


def oihw_to_hwio(w):
  """torch Conv2d (out, in / groups, kh, kw) -> our (kh, kw, in / groups, out)."""
  return w.transpose(2, 3, 1, 0)


def linear_to_dense(w):
  """torch Linear (out, in) -> our Dense (in, out)."""
  return w.T


def bgr_to_rgb_hwio(w):
  """A Keras caffe-mode first conv (kh, kw, BGR, out) -> ours, which takes RGB."""
  return w[:, :, ::-1, :]


def _source_arrays(source: str, weights, keep=()) -> dict[str, np.ndarray]:
  """Every source tensor `convert` must consume, as numpy: the state dict without
  `num_batches_tracked`, or the Keras model's variables without `/count` (what
  cnn_jax.convert.torch_weights / keras_weights ignore). A constant tensor (a bias
  initialised to 0, say) gets random values first, so that no two tensors can pass for
  each other; `keep` (keys consumed outside the variables, e.g. preprocessing) excepted.
  For torchvision that is a new dict (the caller's stays as it was); Keras variables are
  assigned in place."""
  rng = np.random.default_rng(123)
  if source == "torchvision":
    out = {}
    for k, v in weights.items():
      if k.endswith("num_batches_tracked"):
        continue
      a = np.asarray(v.detach().numpy() if hasattr(v, "detach") else v, np.float32)
      if k not in keep and a.size > 1 and a.min() == a.max():
        a = rng.standard_normal(a.shape).astype(np.float32)
      out[k] = a
    return out
  out = {}
  for v in weights.weights:
    if v.path.endswith("/count"):
      continue
    a = np.asarray(v, np.float32)
    if v.path not in keep and a.size > 1 and a.min() == a.max():
      a = rng.standard_normal(a.shape).astype(np.float32)
      v.assign(a)
    out[v.path] = a
  return out


def _fingerprint(a) -> tuple[int, int]:
  """(size, exact sum of the float32 bit patterns): the same for any permutation of the
  values (a transpose, reshape or channel flip), different after any change of a value."""
  a = np.asarray(a)
  assert a.dtype == np.float32, a.dtype
  return a.size, int(np.sum(np.ascontiguousarray(a).view(np.uint32), dtype=np.uint64))


@contextlib.contextmanager
def _recorded_abstract_variables():
  """Records (model, (image_size, channels), tree) of every
  cnn_jax.convert.common.abstract_variables call in the block: jax.eval_shape of
  model.init(key, (1, size, size, channels) float32, train=False)."""
  from cnn_jax.convert import common
  original, record = common.abstract_variables, []

  def recording(model, image_size, channels=3):
    tree = original(model, image_size, channels)
    record.append((model, (image_size, channels), tree))
    return tree

  common.abstract_variables = recording
  try:
    yield record
  finally:
    common.abstract_variables = original


def assert_weights_mapped(source: str, name: str, weights, checks, size: int | None = None,
                          outside_variables=()):
  """Converts `weights` (a torchvision state dict, or a built Keras model) into registry
  model `name` and checks the mapping without running the network:

  (a) the converted variables have exactly the tree, shapes and dtypes that our model
      (`result.model()`, the converter's overrides included) initialises at `size`
      (default: the registry's min_input_size), by jax.eval_shape: no compile;
  (b) every source tensor is used exactly once, values unchanged: as many elements as
      ours, and the multiset of per-tensor fingerprints (size, sum of bit patterns; every
      tensor distinct, see `_source_arrays`) equals ours. So no tensor is dropped,
      doubled, rescaled or swapped for one of another size; `outside_variables` are source
      keys the converter reads into something else (mean/std), which must exist;
  (c) each (source key, our '/'-joined path, layout) in `checks`: ours ==
      layout(source) exactly; with a fourth element `index`, ours[index] == layout(source)
      (the layout then gives only that part: a transpose of 100M elements takes ~3 s).

  What it cannot see, the logits of the family's representative prove: the block code's
  order of operations, and which of two same-shaped tensors of one block goes where
  (that code is shared by every variant). Returns the `Converted`."""
  import functools

  import jax.numpy as jnp

  from cnn_jax import convert, models

  arrays = _source_arrays(source, weights, keep=outside_variables)
  missing = [k for k in outside_variables if k not in arrays]
  assert not missing, f"no source tensors {missing}"
  with _recorded_abstract_variables() as traced:
    result = convert.convert(source, name, arrays if source == "torchvision" else weights)

  # (a) our model's own tree, shapes and dtypes.
  size = size or models.spec(name).min_input_size
  model = result.model()
  # The converter's Target traced this very eval_shape if it built an equal model (Flax
  # modules compare by configuration) at this size: reuse it (the trace is 1-5 s for a
  # deep variant). Otherwise, e.g. an override missing from result.overrides, trace ours.
  expected = next((tree for m, args, tree in traced if m == model and args == (size, 3)), None)
  if expected is None:
    expected = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                              jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
  assert jax.tree.structure(result.variables) == jax.tree.structure(expected), \
      f"converted tree != our model's:\n{jax.tree.structure(result.variables)}\n" \
      f"{jax.tree.structure(expected)}"
  ours = {jax.tree_util.keystr(p, simple=True, separator="/"): leaf
          for p, leaf in jax.tree_util.tree_leaves_with_path(result.variables)}
  for path, leaf in jax.tree_util.tree_leaves_with_path(expected):
    key = jax.tree_util.keystr(path, simple=True, separator="/")
    got = ours[key]
    assert (got.shape, got.dtype) == (leaf.shape, leaf.dtype), \
        f"{key}: converted {got.shape} {got.dtype}, our model {leaf.shape} {leaf.dtype}"

  # (b) each source tensor used once, unchanged.
  used = {k: a for k, a in arrays.items() if k not in outside_variables}
  n_source = sum(a.size for a in used.values())
  n_ours = sum(leaf.size for leaf in ours.values())
  assert n_source == n_ours, f"{n_source} source elements, {n_ours} converted"
  theirs_fp = collections.Counter(_fingerprint(a) for a in used.values())
  ours_fp = collections.Counter(_fingerprint(leaf) for leaf in ours.values())
  if theirs_fp != ours_fp:
    lost = {k: a.shape for k, a in used.items() if _fingerprint(a) in theirs_fp - ours_fp}
    new = {k: leaf.shape for k, leaf in ours.items() if _fingerprint(leaf) in ours_fp - theirs_fp}
    raise AssertionError(f"source tensors not found unchanged in ours: {lost}; ours not "
                         f"from one source tensor: {new}")

  # (c) named tensors, in their layout.
  assert checks, "name at least one tensor to compare"
  for key, path, layout, *index in checks:
    assert path in ours, f"ours has no {path!r}"
    got, want = np.asarray(ours[path]), layout(arrays[key])
    if index:  # a part of a large tensor (the layout gives that part)
      got = got[index[0]]
    assert got.shape == want.shape, f"{source} {key!r} -> ours {path!r}: ours is " \
                                    f"{got.shape}, the layout gives {want.shape}"
    # np.array_equal, not np.testing's (~4 s per 100M elements, e.g. VGG's fc6)
    if not np.array_equal(got, want):
      differ = got != want
      first = tuple(int(i) for i in np.unravel_index(np.argmax(differ), got.shape))
      raise AssertionError(f"{source} {key!r} -> ours {path!r}: {int(differ.sum())} of "
                           f"{got.size} values differ (first at {first})")
  return result
