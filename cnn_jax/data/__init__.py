"""Input pipelines: TFDS datasets through tf.data, one way for every dataset.

`info(name)` describes a dataset without touching disk; `create_input(config, ...)`
prepares it (once) and returns train / eval iterators shaped for the global batch.
TensorFlow is imported lazily, so models and benchmarks work on machines without it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

from cnn_jax.data import augment
from cnn_jax.data.errors import DataError
from cnn_jax.data.pipeline import Split, eval_batches, normalize, train_stream


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  num_classes: int
  channels: int
  native_size: int
  train_split: str
  eval_split: str
  # Dataset statistics for normalisation; None: use the model's (registry spec) mean/std.
  mean: tuple[float, ...] | None = None
  std: tuple[float, ...] | None = None


DATASETS = {
    # Mean / std of the 60k training images (computed once from the data, [0, 1] scale).
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, 1, 28, "train", "test",
                                 mean=(0.2860,), std=(0.3530,)),
}


def info(name: str) -> DatasetInfo:
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}")
  return DATASETS[name]


def prepare(config):
  """Returns the prepared TFDS builder of `config.dataset`, building it once if needed."""
  name = info(config.dataset).name
  if name == "fashion_mnist":
    from cnn_jax.data import fashion_mnist
    return fashion_mnist.builder(config.data_dir, config.source_dir)
  raise DataError(f"no preparation rule for dataset {name!r}")  # unreachable by info()


@dataclasses.dataclass
class Input:
  info: DatasetInfo
  builder: object
  train: Split
  eval: Split
  _train_fn: Callable
  _eval_fn: Callable

  def train_iter(self, start_step: int = 0):
    """Infinite iterator of per-process numpy batches, positioned at `start_step`."""
    return self._train_fn(start_step)

  def eval_iter(self):
    """One pass over the whole eval split; batches carry a 'mask' for the padding."""
    return self._eval_fn()


def _preprocess_fn(ds_info: DatasetInfo, image_size: int, mean, std, augment_name: str):
  import tensorflow as tf
  aug = augment.get(augment_name)

  def preprocess(example, rng_seed, train: bool):
    image = normalize(example["image"], mean, std)
    if image_size != ds_info.native_size:
      image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    if train:
      image = aug(image, rng_seed)
    return {"image": image, "label": example["label"]}

  return preprocess


def create_input(config, *, model_spec, process_index: int = 0,
                 process_count: int = 1) -> Input:
  ds_info = info(config.dataset)
  builder = prepare(config)
  mean = ds_info.mean or model_spec.mean
  std = ds_info.std or model_spec.std
  pre = _preprocess_fn(ds_info, config.image_size, mean, std, config.augment)
  local_train = config.batch_size // process_count
  local_eval = config.eval_batch_size // process_count
  num_train = builder.info.splits[ds_info.train_split].num_examples

  def train_fn(start_step):
    return train_stream(builder, ds_info.train_split, lambda ex, s: pre(ex, s, True),
                        local_batch_size=local_train, seed=config.seed, start_step=start_step,
                        process_index=process_index, process_count=process_count,
                        shuffle_buffer=config.shuffle_buffer, prefetch=config.prefetch)

  # Built once, so its cache of decoded examples serves every evaluation.
  eval_ds, eval_split = eval_batches(
      builder, ds_info.eval_split, lambda ex, s: pre(ex, s, False),
      local_batch_size=local_eval, process_index=process_index, process_count=process_count)

  def eval_fn():
    return eval_ds.as_numpy_iterator()

  train = Split(num_train, local_train, num_train // config.batch_size)
  return Input(ds_info, builder, train, eval_split, train_fn, eval_fn)
