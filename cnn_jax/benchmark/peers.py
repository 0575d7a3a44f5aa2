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
torchvision peer also builds resnet18 / resnet34 / resnet50 with the registry's `stem`
('small': one 3x3/1 conv, no max pool), `width` and `stage_sizes` fields and any number of
input channels, from torchvision's own blocks (`ResNet._make_layer`).
"""

from __future__ import annotations

import importlib.util
import os
import time

from cnn_jax.benchmark import timing

PEERS = ("torchvision", "keras")
PEER_DTYPES = ("float32", "bfloat16")
TORCHVISION_MODELS = ("resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121",
                      "resnet18", "resnet34")
# torchvision's ResNets, rebuilt by the peer for the registry's resnet fields.
TORCHVISION_RESNETS = {"resnet18": ("BasicBlock", (2, 2, 2, 2)),
                       "resnet34": ("BasicBlock", (3, 4, 6, 3)),
                       "resnet50": ("Bottleneck", (3, 4, 6, 3))}
RESNET_FIELDS = ("stem", "width", "stage_sizes")
KERAS_MODELS = {"resnet50": "ResNet50", "mobilenet_v2": "MobileNetV2",
                "efficientnet_b0": "EfficientNetB0", "densenet121": "DenseNet121"}
_NEEDS = {"torchvision": ("torch", "torchvision"), "keras": ("keras",)}
_INSTALL = {"torchvision": "pip install torch torchvision", "keras": "pip install keras"}


class PeerError(Exception):
  """A peer that cannot run here (not installed, unknown model); one line."""


def installed(module: str) -> bool:
  return importlib.util.find_spec(module) is not None


def check(peer: str, model: str, dtype: str, channels: int, model_kwargs: dict) -> None:
  """Raises PeerError for a peer that is not installed or cannot run this model."""
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
  rebuilt = peer == "torchvision" and model in TORCHVISION_RESNETS
  if channels != 3 and not rebuilt:
    raise PeerError(f"the {peer} peer's {model} takes 3 input channels, not {channels}")
  unknown = [k for k in model_kwargs if not rebuilt or k not in RESNET_FIELDS]
  if unknown:
    raise PeerError(f"the {peer} peer builds its own {model}: drop --model-kwargs "
                    f"{', '.join(unknown)} when comparing (the torchvision peer's ResNets "
                    f"take {', '.join(RESNET_FIELDS)})")
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
  if model in TORCHVISION_RESNETS:
    net = torchvision_resnet(model, num_classes, channels, **(model_kwargs or {}))
  else:
    net = getattr(torchvision.models, model)(weights=None, num_classes=num_classes)
  net = net.to(device, memory_format=torch.channels_last)
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
