"""The peers a benchmark compares against, each run in its own process.

  torchvision  torchvision's model of the same name, channels_last memory format, SGD with
               momentum 0.9 (the config's weight decay), cross-entropy; bfloat16 runs
               under torch.autocast (AMP) with float32 parameters, as ours; `compile`
               wraps the model in torch.compile. Threads: every core this process may use.
  keras        Keras 3 `keras.applications` on the JAX backend (weights=None, logits out),
               compiled with the same SGD and loss, timed through `train_on_batch` /
               `predict_on_batch`; bfloat16 is the 'mixed_bfloat16' policy.

Both take the same synthetic batch shape as ours and the same timing (warm-up, then the
median of per-step times, each step waited for). Only the four models below exist in
both registries under one name. For the small-image regime of the studies, the
torchvision peer also rebuilds, from torchvision's own classes and any number of input
channels, the nets the studies train (`REBUILT_FIELDS` lists the fields each takes):
resnet18 / resnet34 / resnet50 with the registry's `stem` ('small': one 3x3/1 conv, no
max pool), `width` and `stage_sizes` (`ResNet._make_layer`); mobilenet_v2 with
`width_multiplier` (torchvision's `width_mult`, the same rounding to multiples of 8); and
VGG A / B / D / E (vgg11, vgg13, vgg16, vgg19 and their _bn siblings) with
`width_multiplier`, `fc_features`, `fc_window` and `batch_norm` (`vgg.make_layers` and
`vgg.VGG` with the classifier resized). `weight_init` and `dense_eval` are accepted and
change nothing there: they set initial values and the evaluation of larger maps, not the
work of a step.
"""

from __future__ import annotations

import importlib.util
import os
import time

from cnn_jax.benchmark import timing

PEERS = ("torchvision", "keras")
PEER_DTYPES = ("float32", "bfloat16")
# torchvision's ResNets, rebuilt by the peer for the registry's resnet fields.
TORCHVISION_RESNETS = {"resnet18": ("BasicBlock", (2, 2, 2, 2)),
                       "resnet34": ("BasicBlock", (3, 4, 6, 3)),
                       "resnet50": ("Bottleneck", (3, 4, 6, 3))}
RESNET_FIELDS = ("stem", "width", "stage_sizes")
# torchvision's VGG columns (Simonyan & Zisserman 2014, Table 1) by registry name: (column,
# BatchNorm after every conv); VGG_FIELDS are the registry's ClassicNet fields it rebuilds.
TORCHVISION_VGGS = {f"{name}{suffix}": (column, suffix == "_bn")
                    for name, column in (("vgg11", "A"), ("vgg13", "B"), ("vgg16", "D"),
                                         ("vgg19", "E"))
                    for suffix in ("", "_bn")}
VGG_FIELDS = ("width_multiplier", "fc_features", "fc_window", "batch_norm", "weight_init",
              "dense_eval")
# The fields of each net the torchvision peer rebuilds (any input channels too).
REBUILT_FIELDS = {**{name: RESNET_FIELDS for name in TORCHVISION_RESNETS},
                  "mobilenet_v2": ("width_multiplier",),
                  **{name: VGG_FIELDS for name in TORCHVISION_VGGS}}
TORCHVISION_MODELS = ("resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121",
                      "resnet18", "resnet34", *TORCHVISION_VGGS)
KERAS_MODELS = {"resnet50": "ResNet50", "mobilenet_v2": "MobileNetV2",
                "efficientnet_b0": "EfficientNetB0", "densenet121": "DenseNet121"}
_NEEDS = {"torchvision": ("torch", "torchvision"), "keras": ("keras",)}
_INSTALL = {"torchvision": "pip install torch torchvision", "keras": "pip install keras"}


class PeerError(Exception):
  """A peer that cannot run here (not installed, unknown model); one line."""


def installed(module: str) -> bool:
  return importlib.util.find_spec(module) is not None


def check(peer: str, model: str, dtype: str, channels: int, model_kwargs: dict,
          image_size: int | None = None) -> None:
  """Raises PeerError for a peer that is not installed or cannot run this model (at
  `image_size`, where given)."""
  if peer not in PEERS:
    raise PeerError(f"unknown peer {peer!r}; choose one of {', '.join(PEERS)} or plain")
  missing = [m for m in _NEEDS[peer] if not installed(m)]
  if missing:
    raise PeerError(f"the {peer} peer needs {' and '.join(missing)}, not installed "
                    f"here ({_INSTALL[peer]})")
  models = TORCHVISION_MODELS if peer == "torchvision" else tuple(KERAS_MODELS)
  if model not in models:
    raise PeerError(f"the {peer} peer has no model {model!r}; it covers "
                    f"{', '.join(models)}")
  if dtype not in PEER_DTYPES:
    raise PeerError(f"the {peer} peer runs {' or '.join(PEER_DTYPES)}, not {dtype}")
  fields = REBUILT_FIELDS.get(model, ()) if peer == "torchvision" else ()
  if channels != 3 and not fields:
    raise PeerError(f"the {peer} peer's {model} takes 3 input channels, not {channels}")
  unknown = [k for k in model_kwargs if k not in fields]
  if unknown:
    takes = (f"its {model} takes {', '.join(fields)}" if fields else
             "the torchvision peer rebuilds " + ", ".join(sorted(
                 {"ResNets" if n in TORCHVISION_RESNETS else "VGGs" if n in TORCHVISION_VGGS
                  else n for n in REBUILT_FIELDS})))
    raise PeerError(f"the {peer} peer builds its own {model}: drop --model-kwargs "
                    f"{', '.join(unknown)} when comparing ({takes})")
  if (model in TORCHVISION_VGGS and image_size is not None
      and image_size // 32 != model_kwargs.get("fc_window", 7)):
    raise PeerError(f"the torchvision peer's {model} needs fc_window equal to the last "
                    f"map's side, {image_size} // 32 = {image_size // 32}, not "
                    f"{model_kwargs.get('fc_window', 7)}")
  if model_kwargs.get("stem", "imagenet") not in ("imagenet", "small"):
    raise PeerError(f"the torchvision peer builds stem imagenet or small, not "
                    f"{model_kwargs['stem']!r}")
  if len(model_kwargs.get("stage_sizes", (0,) * 4)) != 4:
    raise PeerError(f"the torchvision peer's ResNets have four stages, not "
                    f"stage_sizes={tuple(model_kwargs['stage_sizes'])}")


def torchvision_resnet(model: str, num_classes: int, channels: int = 3,
                       stem: str = "imagenet", width: int = 64, stage_sizes=None):
  """torchvision's ResNet `model` with the registry's stem / width / stage_sizes fields
  and `channels` inputs, wired from torchvision's own blocks."""
  import torch.nn as nn
  from torchvision.models import resnet as tv

  block_name, default_stages = TORCHVISION_RESNETS[model]
  block, stages = getattr(tv, block_name), tuple(stage_sizes or default_stages)
  net = tv.ResNet(block, list(stages), num_classes=num_classes)
  if (stem, width, stages, channels) == ("imagenet", 64, default_stages, 3):
    return net
  net.inplanes = width  # what torchvision's __init__ starts from (64), read by _make_layer
  net.conv1 = (nn.Conv2d(channels, width, 7, 2, 3, bias=False) if stem == "imagenet"
               else nn.Conv2d(channels, width, 3, 1, 1, bias=False))
  net.bn1 = nn.BatchNorm2d(width)
  if stem == "small":
    net.maxpool = nn.Identity()
  net.layer1, net.layer2, net.layer3, net.layer4 = (
      net._make_layer(block, width * 2**i, n, stride=1 if i == 0 else 2)
      for i, n in enumerate(stages))
  net.fc = nn.Linear(width * 8 * block.expansion, num_classes)
  return net


def torchvision_mobilenet_v2(num_classes: int, channels: int = 3,
                             width_multiplier: float = 1.0):
  """torchvision's MobileNetV2 at `width_multiplier` (its `width_mult`) with `channels`
  inputs."""
  import torch.nn as nn
  import torchvision

  net = torchvision.models.mobilenet_v2(width_mult=width_multiplier, num_classes=num_classes)
  if channels != 3:
    stem = net.features[0][0]
    net.features[0][0] = nn.Conv2d(channels, stem.out_channels, 3, 2, 1, bias=False)
  return net


def torchvision_vgg(model: str, num_classes: int, channels: int = 3,
                    width_multiplier: float = 1.0, fc_features=(4096, 4096),
                    fc_window: int = 7, batch_norm: bool = False, weight_init: str = "",
                    dense_eval: bool = False):
  """torchvision's VGG column of `model` with every conv width scaled as the registry
  scales it (`scaled_width`), `channels` inputs, BatchNorm where `model` ends in _bn or
  `batch_norm`, and a classifier of `fc_features` over a `fc_window` x `fc_window` map
  (torchvision's own for the defaults). `weight_init` and `dense_eval` change nothing in a
  step's work and are ignored."""
  del weight_init, dense_eval
  import torch.nn as nn
  from torchvision.models import vgg as tv

  from cnn_jax.layers.steps import scaled_width

  column, bn = TORCHVISION_VGGS[model]
  widths = [v if v == "M" else scaled_width(v, width_multiplier) for v in tv.cfgs[column]]
  features = tv.make_layers(widths, batch_norm=bn or batch_norm)
  if channels != 3:
    features[0] = nn.Conv2d(channels, widths[0], 3, padding=1)
  net = tv.VGG(features, num_classes=num_classes)
  if (width_multiplier, tuple(fc_features), fc_window) != (1.0, (4096, 4096), 7):
    fc6, fc7 = fc_features
    net.avgpool = nn.AdaptiveAvgPool2d((fc_window, fc_window))  # a no-op at that size
    net.classifier = nn.Sequential(
        nn.Linear(widths[-2] * fc_window**2, fc6), nn.ReLU(True), nn.Dropout(),
        nn.Linear(fc6, fc7), nn.ReLU(True), nn.Dropout(), nn.Linear(fc7, num_classes))
  return net


def torchvision_net(model: str, num_classes: int, channels: int = 3,
                    model_kwargs: dict | None = None):
  """torchvision's `model`, rebuilt for the registry's fields (`REBUILT_FIELDS`) and
  `channels` where the peer rebuilds it."""
  import torchvision

  kwargs = dict(model_kwargs or {})
  if model in TORCHVISION_RESNETS:
    return torchvision_resnet(model, num_classes, channels, **kwargs)
  if model in TORCHVISION_VGGS:
    return torchvision_vgg(model, num_classes, channels, **kwargs)
  if model == "mobilenet_v2":
    return torchvision_mobilenet_v2(num_classes, channels, **kwargs)
  return getattr(torchvision.models, model)(weights=None, num_classes=num_classes)


def cpu_threads() -> int:
  """The cores this process may run on (PyTorch's thread count in every peer)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    return os.cpu_count() or 1


def measure_torchvision(model: str, batch_size: int, image_size: int, mode: str,
                        dtype: str, steps: int, warmup: int, num_classes: int = 1000,
                        weight_decay: float = 0.0, compile: bool = False,
                        channels: int = 3, model_kwargs: dict | None = None,
                        nesterov: bool = False) -> dict:
  import torch
  import torch.nn.functional as F
  import torchvision

  torch.set_num_threads(cpu_threads())
  cuda = torch.cuda.is_available()
  device = torch.device("cuda" if cuda else "cpu")
  net = torchvision_net(model, num_classes, channels, model_kwargs).to(device, memory_format=torch.channels_last)
  net.train(mode == "train")
  run = torch.compile(net) if compile else net
  generator = torch.Generator().manual_seed(0)
  x = torch.randn(batch_size, channels, image_size, image_size, generator=generator).to(
      device, memory_format=torch.channels_last)
  y = torch.randint(0, num_classes, (batch_size,), generator=generator).to(device)
  optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9,
                              weight_decay=weight_decay, nesterov=nesterov)
  autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16,
                                    enabled=dtype == "bfloat16")
  sync = torch.cuda.synchronize if cuda else (lambda: None)

  def train_step():
    optimizer.zero_grad(set_to_none=True)
    with autocast():
      loss = F.cross_entropy(run(x).float(), y)
    loss.backward()
    optimizer.step()
    sync()

  def infer_step():
    with torch.inference_mode(), autocast():
      run(x)
    sync()

  step = train_step if mode == "train" else infer_step
  t0 = time.perf_counter()
  step()  # the first step: torch.compile's compile, cuDNN's algorithm search
  first = time.perf_counter() - t0
  times = timing.time_steps(step, steps, max(warmup - 1, 0))
  memory = (int(torch.cuda.max_memory_allocated()), "device") if cuda else (
      timing.process_max_rss(), "process_max_rss")
  return {**timing.summary(times, batch_size), "first_step_seconds": first,
          "peak_memory_bytes": memory[0], "peak_memory_source": memory[1],
          "backend": device.type, "threads": torch.get_num_threads(),
          "version": f"torch {torch.__version__}, torchvision {torchvision.__version__}",
          "compiled": compile}


def measure_keras(model: str, batch_size: int, image_size: int, mode: str, dtype: str,
                  steps: int, warmup: int, num_classes: int = 1000,
                  weight_decay: float = 0.0) -> dict:
  import keras
  import numpy as np

  if keras.backend.backend() != "jax":
    raise PeerError(f"the keras peer runs on Keras's JAX backend, but Keras started with "
                    f"{keras.backend.backend()!r} (set KERAS_BACKEND=jax)")
  if dtype == "bfloat16":
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
  net = getattr(keras.applications, KERAS_MODELS[model])(
      weights=None, input_shape=(image_size, image_size, 3), classes=num_classes,
      classifier_activation=None)
  net.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9,
                                             weight_decay=weight_decay or None),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              jit_compile=True)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((batch_size, image_size, image_size, 3), dtype=np.float32)
  y = rng.integers(0, num_classes, batch_size).astype(np.int32)
  if mode == "train":
    step = lambda: net.train_on_batch(x, y)  # returns the loss as a float: waits
  else:
    step = lambda: np.asarray(net.predict_on_batch(x))
  t0 = time.perf_counter()
  step()  # compiles
  first = time.perf_counter() - t0
  times = timing.time_steps(step, steps, max(warmup - 1, 0))
  import jax
  stats = jax.local_devices()[0].memory_stats() or {}
  memory = ((int(stats["peak_bytes_in_use"]), "device") if stats.get("peak_bytes_in_use")
            else (timing.process_max_rss(), "process_max_rss"))
  return {**timing.summary(times, batch_size), "first_step_seconds": first,
          "peak_memory_bytes": memory[0], "peak_memory_source": memory[1],
          "backend": jax.default_backend(), "version": f"keras {keras.__version__}"}
