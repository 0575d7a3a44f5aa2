"""Process-level settings that must happen before JAX starts its CPU backend.

On CPU, XLA sends convolutions to YNNPACK by default, whose kernel gradient is ~10x slower
than its forward pass; excluding individual convolutions from YNN fusion doubled ResNet-50
training on 2 cores (jaxlib 0.10.2). The flag is unknown to other jaxlib versions and an
unknown XLA flag aborts the process, so it is applied only to versions where it was
measured. Glibc's mmap threshold makes every large activation a fresh mmap + page-fault
storm; keeping freed memory in the heap adds ~10%, and running single-device programs on
the calling thread, whose heap that is, 1.1-1.4x more (`INLINE_DISPATCH`). Set
CNN_JAX_CPU_TUNING=0 to skip all three.

`CNN_JAX_CPU_DEVICES=N` splits the host CPU into N single-threaded XLA devices, over which
the trainer shards each batch. It is not a default: on 2 cores it was 1.05-1.10x on the
small-image train steps of the studies (28-32 px, batch 128) and 0.91x on ResNet-50 at
224 px, and since single-device programs run on the calling thread, one device is faster
for all of them (two: 0.75-0.93x).

`enable_compilation_cache()` keeps compiled programs on disk (JAX's persistent cache), so
a rerun or another seed of the same config does not compile again.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os

COMPILATION_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "cnn_jax", "xla")
YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
_YNN_FLAG_VERSIONS = ("0.10.",)  # jaxlib versions where the flag exists and was measured


# Programs that only run a forward pass (evaluation, inference) compile without any YNNPACK
# fusion on CPU. YNN_FLAG leaves XLA's element-wise and reduction fusions to YNNPACK, which
# training needs (without them ResNet-50's train step ran at 2.25 instead of 4.19 img/s,
# MobileNetV2's at 3.9 instead of 13.5), but in a forward-only program they swallowed VGG's
# whole network: VGG-11 at 224 px, batch 8, ran in 13.2 s instead of 0.47 s. AlexNet,
# ResNet-50, MobileNetV2, EfficientNet-B0, DenseNet-121 and Inception v3 ran their forward
# pass as fast or up to 5% faster without them (jaxlib 0.10.2, 2 cores, 2026-12-06).
FORWARD_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}

# The switches of the CPU-only paths (cnn_jax/layers/depthwise.py, pointwise.py, patches.py
# and fence.py for `Conv`, pooling.py for max pooling), each on unless its variable is
# "0": the benchmark's plain path sets them all.
CPU_GRADIENT_VARIABLES = ("CNN_JAX_DEPTHWISE_VJP", "CNN_JAX_POINTWISE_VJP",
                          "CNN_JAX_PATCHES_CONV", "CNN_JAX_FENCED_VJP", "CNN_JAX_MAXPOOL_VJP")


# By default JAX hands a program for one CPU device to a worker thread of its client
# (asynchronous dispatch). glibc serves that thread's allocations from a secondary arena,
# and there the program's temporary buffer (hundreds of MB in a 224 px train step) was
# mapped afresh and faulted in at every step, whatever M_MMAP_MAX says: 116k page faults
# per MobileNetV2 step at batch 8, a third of the process's CPU time in the kernel (the
# faults vanish with MALLOC_ARENA_MAX=1 too, which instead makes every thread contend for
# one arena). Run on the calling thread, the buffer comes from the main arena, which the
# settings in `configure_cpu` keep mapped: 59 faults per step, and train steps 1.38-1.41x
# faster for MobileNetV2 and EfficientNet-B0, 1.11x for ResNet-50 and DenseNet-121, 1.13x
# for the quickstart model (2 cores, jaxlib 0.10.2, 2026-12-07). JAX keeps dispatching
# programs over several devices (CNN_JAX_CPU_DEVICES, simulated devices) asynchronously.
INLINE_DISPATCH = True


def cpu_tuning_enabled() -> bool:
  """False when CNN_JAX_CPU_TUNING=0 (the benchmark's plain path sets it): no XLA flag, no
  malloc settings, no forward compile options, no CNN_JAX_CPU_DEVICES split."""
  return os.environ.get("CNN_JAX_CPU_TUNING", "1") != "0"


def forward_compiler_options(device_platform: str) -> dict | None:
  """`compiler_options` for a forward-only program on a device of `device_platform`: no
  YNNPACK fusions on CPU where this package set YNN_FLAG, else None (XLA's defaults)."""
  if (device_platform != "cpu" or not cpu_tuning_enabled()
      or not _jaxlib_version().startswith(_YNN_FLAG_VERSIONS)):
    return None
  return dict(FORWARD_COMPILER_OPTIONS)


def _jaxlib_version() -> str:
  try:
    return importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return ""


def start_process() -> None:
  """The one process-level setting of the entry points (main, sweep, convert, prepare),
  called first in each one's `run()` / `__main__`, never at import: the CPU settings below
  and quieter TensorFlow C++ logs. Importing a cnn_jax module changes nothing global."""
  configure_cpu()
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cpu_device_flags(value: str, xla_flags: str) -> str:
  """XLA_FLAGS with the host CPU split into `value` devices (CNN_JAX_CPU_DEVICES), each
  running its operations on one thread: the trainer then shards every batch over them as
  over accelerators (the same global-batch statistics and gradients, summed in another
  order). Unchanged for an empty value or 1, and where `xla_flags` sets a device count
  already (a test's or the user's own). Raises ValueError for anything but a whole number
  >= 1."""
  value = value.strip()
  if not value:
    return xla_flags
  if not value.isdecimal() or int(value) < 1:
    raise ValueError(f"CNN_JAX_CPU_DEVICES={value!r}: expected a whole number >= 1, e.g. "
                     f"2 on a 2-core machine (unset it for one CPU device)")
  if int(value) == 1 or "xla_force_host_platform_device_count" in xla_flags:
    return xla_flags
  return (f"{xla_flags} --xla_force_host_platform_device_count={int(value)} "
          f"--xla_cpu_multi_thread_eigen=false").strip()


def configure_cpu() -> None:
  """Call before `import jax`. No-op where JAX will not run on the CPU. A bad
  CNN_JAX_CPU_DEVICES exits with one line."""
  if not cpu_tuning_enabled():
    return
  platforms = os.environ.get("JAX_PLATFORMS", "")
  if platforms and "cpu" not in platforms:
    return
  flags = os.environ.get("XLA_FLAGS", "")
  try:
    flags = cpu_device_flags(os.environ.get("CNN_JAX_CPU_DEVICES", ""), flags)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  if _jaxlib_version().startswith(_YNN_FLAG_VERSIONS) and "ynn_fusion_type" not in flags:
    flags = f"{flags} {YNN_FLAG}".strip()
  if flags:
    os.environ["XLA_FLAGS"] = flags
  try:  # glibc only: M_TRIM_THRESHOLD = -1, M_MMAP_MAX = -4
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-4, 0)
    libc.mallopt(-1, 2**31 - 1)  # an int; the largest trim threshold
  except (OSError, AttributeError):
    pass
  # A program on one CPU device runs on the calling thread, where the heap settings above
  # hold (see INLINE_DISPATCH).
  set_inline_dispatch(INLINE_DISPATCH)


def set_inline_dispatch(inline: bool) -> None:
  """Whether JAX runs a single-device CPU program on the calling thread (True) or hands
  it to a worker thread (False, JAX's default). Takes effect for a CPU backend started
  after the call. A multi-process job turns it off (`parallel.initialize_distributed`)."""
  import jax
  jax.config.update("jax_cpu_enable_async_dispatch", not inline)


def enable_compilation_cache() -> str:
  """Turns on JAX's persistent compilation cache in COMPILATION_CACHE_DIR (or
  $JAX_COMPILATION_CACHE_DIR) for programs that take over a second to compile; a cache
  directory configured already is kept. Returns the directory in use. Call after
  `import jax` is allowed (any time before the first compile)."""
  import jax
  if not jax.config.jax_compilation_cache_dir:
    jax.config.update("jax_compilation_cache_dir",
                      os.environ.get("JAX_COMPILATION_CACHE_DIR") or COMPILATION_CACHE_DIR)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  return jax.config.jax_compilation_cache_dir
