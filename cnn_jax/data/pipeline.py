"""tf.data pipelines shared by every dataset: per-process slices, deterministic resumable
training streams, and padded-and-masked evaluation so that every example counts.

Training stream: cache -> shuffle (seeded, reshuffled per epoch) -> repeat -> enumerate ->
skip(already consumed) -> map(preprocess with a per-example stateless seed) -> batch.
Because each example's augmentation is seeded by (seed, its index in the stream), a run
resumed at step k sees exactly the batches an uninterrupted run sees from step k.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterator

import numpy as np


@dataclasses.dataclass(frozen=True)
class Split:
  """What the input pipeline produces for one split of one process."""
  num_examples: int      # examples in the whole split (all processes)
  local_batch_size: int  # per process
  num_batches: int       # per epoch (train, drop_remainder) or to cover the split (eval)


def process_split(builder, split: str, process_index: int, process_count: int) -> str:
  """This process's even share of `split` (TFDS sub-split syntax)."""
  import tensorflow_datasets as tfds
  return tfds.even_splits(split, n=process_count, drop_remainder=False)[process_index]


def traced_as_written(fn: Callable) -> Callable:
  """`fn` for `Dataset.map` (or `flat_map`), traced as written. The package's map
  functions use TF ops only, never Python control flow on tensors, so AutoGraph's
  source-to-source conversion (on by default in `map`) has nothing to do; skipping it saves
  ~0.6 s of CPU per Fashion-MNIST pipeline built (0.64 of 1.69 s in a profile: train and
  eval streams)."""
  import tensorflow as tf
  return tf.autograph.experimental.do_not_convert(fn)


def _options():
  import tensorflow as tf
  options = tf.data.Options()
  options.deterministic = True
  options.threading.private_threadpool_size = 0  # share tf's pool
  options.experimental_optimization.map_parallelization = True
  return options


def train_stream(builder, split: str, preprocess: Callable, *, local_batch_size: int,
                 seed: int, start_step: int, process_index: int, process_count: int,
                 shuffle_buffer: int, prefetch: int = 2, cache: bool = True,
                 decoders=None, batch_fn: Callable | None = None,
                 seed_per_epoch: bool = False) -> Iterator[dict]:
  """Infinite iterator of numpy batches {'image', 'label'} starting at `start_step`.

  `preprocess(example, rng_seed)` maps one decoded TFDS example to {'image', 'label'};
  `rng_seed` is a [2] int32 tensor for tf's stateless random ops. `decoders` goes to
  `as_dataset` (e.g. skip JPEG decoding so `preprocess` can decode and crop in one step).
  `batch_fn(batch, rng_seed)` runs on each batch (batch-level augmentation: mixup, cutmix),
  seeded by the batch's step. `seed_per_epoch` shuffles epoch e with its own seed
  (seed, e), so a resume skips whole epochs without reading them (what a 1.28M-image
  dataset needs); the default keeps one reshuffling stream (small, cached datasets).
  """
  import tensorflow as tf

  split = process_split(builder, split, process_index, process_count)
  ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
  if cache:
    ds = ds.cache()
  shuffle_seed = seed + 1000 * process_index
  skip = start_step * local_batch_size
  if seed_per_epoch:
    epoch_size = builder.info.splits[split].num_examples
    first_epoch = skip // epoch_size
    one_epoch = ds

    def shuffled_epoch(epoch):
      # A tensor seed: TF would combine it with a global seed (`tf.random.set_seed`), which
      # changes the order and, for global seed 0, fails inside TF's `get_seed` (it tests
      # the tensor for truth). The epoch's order depends on (seed, epoch) alone.
      graph = tf.compat.v1.get_default_graph()
      global_seed, graph.seed = graph.seed, None
      try:
        return one_epoch.shuffle(shuffle_buffer, seed=shuffle_seed * 100_003 + epoch)
      finally:
        graph.seed = global_seed

    ds = tf.data.Dataset.range(first_epoch, 2**62).flat_map(traced_as_written(shuffled_epoch))
    ds = ds.enumerate(start=first_epoch * epoch_size).skip(skip - first_epoch * epoch_size)
  else:
    ds = ds.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=True).repeat()
    ds = ds.enumerate().skip(skip)

  def _map(index, example):
    rng = tf.stack([tf.cast(seed, tf.int64), index + (process_index << 40)])
    return preprocess(example, tf.cast(rng % (2**31 - 1), tf.int32))

  ds = ds.map(traced_as_written(_map), num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(local_batch_size, drop_remainder=True)
  if batch_fn is not None:
    def _map_batch(step, batch):
      rng = tf.stack([tf.cast(seed, tf.int64) + 7919, step + (process_index << 40)])
      return batch_fn(batch, tf.cast(rng % (2**31 - 1), tf.int32))
    ds = ds.enumerate(start=start_step).map(traced_as_written(_map_batch),
                                            num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.prefetch(prefetch).with_options(_options())
  return iter(ds.as_numpy_iterator())


def local_eval_batch(eval_batch_size: int, num_examples: int, *, process_count: int,
                     max_examples: int, what: str) -> int:
  """Per-process eval batch, no larger than the split (or its first `max_examples`) needs,
  rounded up to the local devices: a 10k-image split is not padded to a 16k batch, nor a
  smoke run's 64 images to 1000. A shrunk batch is logged, naming the split (`what`)."""
  import logging

  import jax
  local = eval_batch_size // process_count
  total = min(num_examples, max_examples) if max_examples > 0 else num_examples
  devices = jax.local_device_count()
  needed = -(-max(total, 1) // process_count)
  shrunk = min(local, -(-needed // devices) * devices)
  if shrunk < local:
    logging.info("eval batch %d instead of eval_batch_size=%d: %s has %d examples to "
                 "evaluate", shrunk * process_count, eval_batch_size, what, total)
  return shrunk


def eval_batches(builder, split: str, preprocess: Callable, *, local_batch_size: int,
                 process_index: int, process_count: int, cache: bool = True, decoders=None,
                 max_examples: int = -1):
  """Returns (iterable of numpy batches with a 'mask', Split).

  Every process yields the same number of batches; padding examples have mask 0, so the
  metrics sum over exactly the split's examples. `cache` keeps the preprocessed examples
  in memory (small datasets only: 50k ImageNet crops would be ~30 GB). `max_examples` > 0
  evaluates only the split's first examples (smoke runs), split evenly over processes.
  """
  import tensorflow as tf

  total = builder.info.splits[split].num_examples
  if max_examples > 0:
    total = min(total, max_examples)
  per_process_max = math.ceil(total / process_count)
  num_batches = math.ceil(per_process_max / local_batch_size)
  ds = builder.as_dataset(split=process_split(builder, split, process_index, process_count),
                          shuffle_files=False, decoders=decoders)
  if max_examples > 0:
    ds = ds.take(per_process_max)
  zero_seed = tf.zeros([2], tf.int32)
  with_mask = lambda ex: dict(preprocess(ex, zero_seed), mask=tf.constant(1.0))
  ds = ds.map(traced_as_written(with_mask), num_parallel_calls=tf.data.AUTOTUNE)
  if cache:
    ds = ds.cache()
  zeros = lambda ex: {k: tf.zeros_like(v) for k, v in ex.items()}
  pad = ds.take(1).map(traced_as_written(zeros)).repeat()
  ds = ds.concatenate(pad).take(num_batches * local_batch_size)
  ds = ds.batch(local_batch_size, drop_remainder=True).prefetch(2).with_options(_options())
  return ds, Split(total, local_batch_size, num_batches)


def normalization(mean, std) -> tuple[np.ndarray, np.ndarray]:
  """(scale, offset), float32 per channel: normalising is x * scale + offset, the same as
  (x / 255 - mean) / std for x in [0, 255]."""
  mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
  return (1.0 / (255.0 * std)).astype(np.float32), (-mean / std).astype(np.float32)


def normalize(image, mean, std):
  """[0, 255] HWC (uint8 or float) -> float32, per channel (x / 255 - mean) / std.

  Written as a [HW, C] x diag(C) matmul plus `bias_add`: TF's broadcasting multiply and
  subtract over a trailing dimension of 3 cost ~1.9 ms per 224 px image on one core,
  this ~0.45 ms (measured with experiments/bench_input_pipeline.py's setup).
  """
  import tensorflow as tf
  scale, offset = normalization(mean, std)
  image = tf.cast(image, tf.float32)
  shape = tf.shape(image)
  flat = tf.reshape(image, [-1, len(scale)])
  flat = tf.nn.bias_add(tf.matmul(flat, tf.constant(np.diag(scale))), tf.constant(offset))
  return tf.reshape(flat, shape)


def normalized(image, mean_std):
  """`normalize(image, *mean_std)`, or `image` as it is when `mean_std` is None: for the
  augmentations that take an optional `normalize=(mean, std)`."""
  return image if mean_std is None else normalize(image, *mean_std)


def as_numpy(batch) -> dict[str, np.ndarray]:
  return {k: np.asarray(v) for k, v in batch.items()}
