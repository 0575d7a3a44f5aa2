"""Input pipelines: TFDS datasets through tf.data, one way for every dataset.

`info(name)` describes a dataset without touching disk; `create_input(config, ...)`
prepares it (once) and returns train / eval iterators shaped for the global batch.
TensorFlow is imported lazily, so models and benchmarks work on machines without it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
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
  # Images stored as JPEG bytes of varying size: decoded and cropped together, with the
  # ImageNet augmentations and evaluation protocols (cnn_jax/data/imagenet.py).
  jpeg: bool = False
  label_key: str = "label"
  # Evaluated on the classes present only (ImageNet-A / -R: 200 of the 1000).
  class_subset: bool = False


DATASETS = {
    # Mean / std of the 60k training images (computed once from the data, [0, 1] scale).
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, 1, 28, "train", "test",
                                 mean=(0.2860,), std=(0.3530,)),
    # ImageNet and its evaluation-only companions (native size 0: varies per image).
    "imagenet2012": DatasetInfo("imagenet2012", 1000, 3, 0, "train", "validation", jpeg=True),
    "imagenet_v2": DatasetInfo("imagenet_v2", 1000, 3, 0, "", "test", jpeg=True),
    "imagenet2012_real": DatasetInfo("imagenet2012_real", 1000, 3, 0, "", "validation",
                                     jpeg=True, label_key="original_label"),
    "imagenet_a": DatasetInfo("imagenet_a", 1000, 3, 0, "", "test", jpeg=True,
                              class_subset=True),
    "imagenet_r": DatasetInfo("imagenet_r", 1000, 3, 0, "", "test", jpeg=True,
                              class_subset=True),
    # Users' folders (class per subfolder, --config.source_dir); classes counted on prepare.
    "image_folder": DatasetInfo("image_folder", 0, 3, 0, "train", "validation", jpeg=True),
}
EVAL_ONLY = tuple(n for n, d in DATASETS.items() if not d.train_split)


def info(name: str) -> DatasetInfo:
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}")
  return DATASETS[name]


def dataset_builder(name: str, config, *, build: bool = True):
  """The prepared TFDS builder of dataset `name` (evaluation-only sets too)."""
  if name == "fashion_mnist":
    from cnn_jax.data import fashion_mnist
    return fashion_mnist.builder(config.data_dir, config.source_dir)
  if name == "image_folder":
    from cnn_jax.data import image_folder
    return image_folder.builder(config.data_dir, config.source_dir)
  if info(name).jpeg:
    from cnn_jax.data import imagenet
    return imagenet.builder(name, config.data_dir, config.get("manual_dir"), build=build)
  raise DataError(f"no preparation rule for dataset {name!r}")  # unreachable by info()


def extra_eval_names(config) -> tuple[str, ...]:
  """`config.extra_eval_datasets`: evaluation sets besides the dataset's own split."""
  names = config.get("extra_eval_datasets", ()) or ()
  names = (names,) if isinstance(names, str) else names
  # `--config.extra_eval_datasets=a,b` arrives as the one-element tuple ('a,b',).
  return tuple(n.strip() for entry in names for n in entry.split(",") if n.strip())


def protocol_needs_jpeg(protocol: str, name: str) -> str:
  """The error for a multi-view evaluation protocol on a dataset of decoded arrays."""
  return (f"eval_protocol {protocol!r} needs a JPEG dataset (imagenet2012, image_folder): "
          f"its crops are cut from the encoded full-size image; {name} is evaluated with "
          f"center only: set --config.eval_protocol=center")


def prepare(config):
  """Returns the prepared TFDS builder of `config.dataset`, building it once if needed."""
  ds_info = info(config.dataset)
  name = ds_info.name
  if not ds_info.jpeg and augment.is_encoded(config.augment):
    raise DataError(f"augment {config.augment!r} crops encoded JPEGs (ImageNet-style "
                    f"datasets); for {name} use one of none, flip_crop")
  if not ds_info.train_split:
    raise DataError(f"{name} is an evaluation set; train on imagenet2012 and add it with "
                    f"--config.extra_eval_datasets={name}")
  from cnn_jax.data.eval_protocols import PROTOCOLS
  protocol = config.get("eval_protocol", "center")
  if protocol not in PROTOCOLS:
    raise DataError(f"unknown eval_protocol {protocol!r}; choose one of "
                    f"{', '.join(PROTOCOLS)}")
  if protocol != "center" and not ds_info.jpeg:
    raise DataError(protocol_needs_jpeg(protocol, name))
  for extra in extra_eval_names(config):
    if extra not in DATASETS or info(extra).train_split or not info(extra).jpeg:
      raise DataError(f"extra_eval_datasets: {extra!r} is not an ImageNet evaluation set; "
                      f"choose from {', '.join(EVAL_ONLY)}")
    dataset_builder(extra, config, build=False)
  builder = dataset_builder(name, config)
  check_files(builder)
  return builder


def check_files(builder) -> None:
  """DataError if a prepared split's record files are missing or not the size its
  dataset_info.json records (a copy cut short, a full disk): found here, in a second,
  instead of by tf.data after compiling. Each TFRecord adds 16 bytes of framing (length,
  two CRCs) to the example bytes TFDS counts."""
  from tensorflow_datasets.core import file_adapters
  if builder.info.file_format not in (None, file_adapters.FileFormat.TFRECORD):
    return
  for name, split in builder.info.splits.items():
    expected = int(split.num_bytes) + 16 * int(split.num_examples)
    if not int(split.num_bytes):
      continue  # not recorded
    paths = [str(p) for p in split.filepaths]
    missing = [p for p in paths if not os.path.isfile(p)]
    found = sum(os.path.getsize(p) for p in paths if p not in missing)
    if missing or found != expected:
      what = (f"{len(missing)} of its {len(paths)} files are missing ({missing[0]})"
              if missing else f"its files hold {found} bytes, {expected} expected")
      raise DataError(f"the prepared {builder.name} {name} split in {builder.data_dir} is "
                      f"damaged: {what}; delete {builder.data_dir} to build it again (or "
                      f"copy it again)")


@dataclasses.dataclass
class Input:
  info: DatasetInfo
  builder: object
  train: Split
  eval: Split
  _train_fn: Callable
  _eval_fn: Callable
  # name -> (Split, iterator fn, class subset or None) of config.extra_eval_datasets.
  extra_evals: dict = dataclasses.field(default_factory=dict)

  def train_iter(self, start_step: int = 0):
    """Infinite iterator of per-process numpy batches, positioned at `start_step`."""
    return self._train_fn(start_step)

  def eval_iter(self):
    """One pass over the whole eval split; batches carry a 'mask' for the padding."""
    return self._eval_fn()


def _local_eval_batch(config, process_count: int, num_examples: int, what: str) -> int:
  """Per-process eval batch, no larger than the split (or its first `eval_max_examples`)
  needs, rounded up to the local devices: a 10k-image split is not padded to a 16k batch,
  nor a smoke run's 64 images to 1000. A shrunk batch is logged."""
  import logging

  import jax
  local = config.eval_batch_size // process_count
  max_examples = config.get("eval_max_examples", -1)
  total = min(num_examples, max_examples) if max_examples > 0 else num_examples
  devices = jax.local_device_count()
  needed = -(-max(total, 1) // process_count)
  shrunk = min(local, -(-needed // devices) * devices)
  if shrunk < local:
    logging.info("eval batch %d instead of eval_batch_size=%d: %s has %d examples to "
                 "evaluate", shrunk * process_count, config.eval_batch_size, what, total)
  return shrunk


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


def train_split(config, ds_info: DatasetInfo) -> str:
  """The training split, or its first `config.train_max_examples` examples (TFDS slice
  syntax) when that is positive: the small-training-set regime of the overfitting
  studies."""
  n = config.get("train_max_examples", -1)
  return f"{ds_info.train_split}[:{n}]" if n and n > 0 else ds_info.train_split


def create_input(config, *, model_spec, process_index: int = 0,
                 process_count: int = 1) -> Input:
  ds_info = info(config.dataset)
  if ds_info.jpeg:
    return _create_jpeg_input(config, ds_info, model_spec, process_index, process_count)
  builder = prepare(config)
  mean = ds_info.mean or model_spec.mean
  std = ds_info.std or model_spec.std
  pre = _preprocess_fn(ds_info, config.image_size, mean, std, config.augment)
  local_train = config.batch_size // process_count
  split = train_split(config, ds_info)
  num_train = builder.info.splits[split].num_examples
  local_eval = _local_eval_batch(config, process_count,
                                 builder.info.splits[ds_info.eval_split].num_examples,
                                 f"the {ds_info.eval_split} split of {ds_info.name}")

  def train_fn(start_step):
    return train_stream(builder, split, lambda ex, s: pre(ex, s, True),
                        local_batch_size=local_train, seed=config.seed, start_step=start_step,
                        process_index=process_index, process_count=process_count,
                        shuffle_buffer=config.shuffle_buffer, prefetch=config.prefetch)

  # Built once, so its cache of decoded examples serves every evaluation.
  eval_ds, eval_split = eval_batches(
      builder, ds_info.eval_split, lambda ex, s: pre(ex, s, False),
      local_batch_size=local_eval, process_index=process_index, process_count=process_count,
      max_examples=config.get("eval_max_examples", -1))

  def eval_fn():
    return eval_ds.as_numpy_iterator()

  train = Split(num_train, local_train, num_train // config.batch_size)
  return Input(ds_info, builder, train, eval_split, train_fn, eval_fn)


def _create_jpeg_input(config, ds_info: DatasetInfo, model_spec, process_index: int,
                       process_count: int) -> Input:
  """ImageNet-style datasets: JPEG bytes decoded and cropped in one step, never cached
  (1.28M images), an epoch-seeded shuffle so a resume skips epochs without reading them,
  the configured evaluation protocol, and mixup / cutmix on the batch."""
  from cnn_jax.data import imagenet

  builder = prepare(config)
  if ds_info.name == "image_folder":
    ds_info = dataclasses.replace(ds_info,
                                  num_classes=builder.info.features["label"].num_classes)
  mean = ds_info.mean or model_spec.mean
  std = ds_info.std or model_spec.std
  common = dict(size=config.image_size, mean=mean, std=std,
                method=model_spec.interpolation, crop_fraction=model_spec.crop_fraction)
  train_pre = imagenet.train_preprocess(
      augment.get(config.augment), augment_kwargs={
          "randaugment_layers": config.get("randaugment_layers", 2),
          "randaugment_magnitude": config.get("randaugment_magnitude", 10.0)}, **common)
  protocol = config.get("eval_protocol", "center")
  scales = config.get("eval_scales", None)
  local_train = config.batch_size // process_count
  split = train_split(config, ds_info)
  num_train = builder.info.splits[split].num_examples
  mixup, cutmix = config.get("mixup_alpha", 0.0), config.get("cutmix_alpha", 0.0)
  batch_fn = None
  if mixup > 0 or cutmix > 0:
    batch_fn = functools.partial(augment.mix_batch, mixup_alpha=mixup, cutmix_alpha=cutmix)

  def train_fn(start_step):
    return train_stream(builder, split, train_pre, local_batch_size=local_train,
                        seed=config.seed, start_step=start_step, process_index=process_index,
                        process_count=process_count, shuffle_buffer=config.shuffle_buffer,
                        prefetch=config.prefetch, cache=False,
                        decoders=imagenet.skip_decoding(), batch_fn=batch_fn,
                        seed_per_epoch=True)

  def eval_input(b, split, info_: DatasetInfo):
    local_eval = _local_eval_batch(config, process_count, b.info.splits[split].num_examples,
                                   f"the {split} split of {info_.name}")
    pre = imagenet.eval_preprocess(protocol=protocol, scales=scales, label_key=info_.label_key,
                                   num_classes=info_.num_classes, **common)
    ds, split_info = eval_batches(b, split, pre, local_batch_size=local_eval,
                                  process_index=process_index, process_count=process_count,
                                  cache=False, decoders=imagenet.skip_decoding(),
                                  max_examples=config.get("eval_max_examples", -1))
    return split_info, ds.as_numpy_iterator

  eval_split, eval_fn = eval_input(builder, ds_info.eval_split, ds_info)
  extra = {}
  for name in extra_eval_names(config):
    extra_info = info(name)
    b = dataset_builder(name, config, build=False)
    split_info, fn = eval_input(b, extra_info.eval_split, extra_info)
    subset = (imagenet.class_subset(b, extra_info.eval_split, extra_info.label_key)
              if extra_info.class_subset else None)
    extra[name] = (split_info, fn, subset)
  train = Split(num_train, local_train, num_train // config.batch_size)
  return Input(ds_info, builder, train, eval_split, train_fn, eval_fn, extra)
