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
from cnn_jax.data.pipeline import (Split, eval_batches, local_eval_batch, normalize,
                                   train_stream)

# --- how each kind of stored image becomes model input -----------------------------------


def _decoded_preprocess(config, ds_info, model_spec, mean, std, *, train: bool):
  """Arrays TFDS decodes (Fashion-MNIST): normalised, resized when image_size is not the
  stored size, for training augmented per image, for evaluation with its mirror under the
  `flip` protocol."""
  import tensorflow as tf

  from cnn_jax.data.eval_protocols import with_mirror
  del model_spec
  size = config.image_size
  aug = augment.get(config.augment) if train else None
  mirror = not train and config.get("eval_protocol", "center") == "flip"

  def preprocess(example, rng_seed):
    image = normalize(example["image"], mean, std)
    if size != ds_info.native_size:
      image = tf.image.resize(image, [size, size], method="bilinear")
    if aug is not None:
      image = aug(image, rng_seed)
    if mirror:
      image = with_mirror(image)
    return {"image": image, "label": example["label"]}

  return preprocess


def _crop_args(config, model_spec, mean, std) -> dict:
  return dict(size=config.image_size, mean=mean, std=std, method=model_spec.interpolation,
              crop_fraction=model_spec.crop_fraction)


def _jpeg_train_preprocess(config, ds_info, model_spec, mean, std):
  """Encoded JPEGs decoded and cropped in one step by the configured augmentation."""
  del ds_info
  from cnn_jax.data import imagenet
  return imagenet.train_preprocess(
      augment.get(config.augment), augment_kwargs={
          "randaugment_layers": config.get("randaugment_layers", 2),
          "randaugment_magnitude": config.get("randaugment_magnitude", 10.0)},
      **_crop_args(config, model_spec, mean, std))


def _jpeg_eval_preprocess(config, ds_info, model_spec, mean, std):
  """The views of the configured evaluation protocol (cnn_jax/data/eval_protocols.py)."""
  from cnn_jax.data import imagenet
  return imagenet.eval_preprocess(
      protocol=config.get("eval_protocol", "center"), scales=config.get("eval_scales", None),
      label_key=ds_info.label_key, num_classes=ds_info.num_classes,
      **_crop_args(config, model_spec, mean, std))


@dataclasses.dataclass(frozen=True)
class ImageKind:
  """How a dataset's stored images are preprocessed: each field is called as
  fn(config, ds_info, model_spec, mean, std) and returns (example, rng_seed) -> batch
  entry; `ds_info` is the split's own dataset, mean / std the training set's."""
  train_preprocess: Callable
  eval_preprocess: Callable


DECODED = ImageKind(functools.partial(_decoded_preprocess, train=True),
                    functools.partial(_decoded_preprocess, train=False))
# JPEG bytes of varying size: decoded and cropped together, with the ImageNet
# augmentations and evaluation protocols (cnn_jax/data/imagenet.py).
JPEG = ImageKind(_jpeg_train_preprocess, _jpeg_eval_preprocess)

# --- where each dataset's prepared TFDS builder comes from: fn(name, config, build) -------


def _fashion_mnist_builder(name: str, config, build: bool):
  del name, build  # built on first use from TFDS's download or local files
  from cnn_jax.data import fashion_mnist
  return fashion_mnist.builder(config.data_dir, config.source_dir)


def _image_folder_builder(name: str, config, build: bool):
  del name, build  # built on first use from --config.source_dir
  from cnn_jax.data import image_folder
  return image_folder.builder(config.data_dir, config.source_dir)


def _imagenet_builder(name: str, config, build: bool):
  from cnn_jax.data import imagenet
  return imagenet.builder(name, config.data_dir, config.get("manual_dir"), build=build)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  num_classes: int
  channels: int
  native_size: int
  train_split: str
  eval_split: str
  kind: ImageKind
  get_builder: Callable  # (name, config, build) -> the prepared TFDS builder
  # Dataset statistics for normalisation; None: use the model's (registry spec) mean/std.
  mean: tuple[float, ...] | None = None
  std: tuple[float, ...] | None = None
  label_key: str = "label"
  # Evaluated on the classes present only (ImageNet-A / -R: 200 of the 1000).
  class_subset: bool = False

  @property
  def jpeg(self) -> bool:
    """Stored as encoded JPEGs: ImageNet-style augmentations, multi-view evaluation
    protocols, mixup / cutmix and extra evaluation sets apply."""
    return self.kind is JPEG


_imagenet_eval = functools.partial(DatasetInfo, num_classes=1000, channels=3, native_size=0,
                                   train_split="", kind=JPEG, get_builder=_imagenet_builder)
DATASETS = {
    # Mean / std of the 60k training images (computed once from the data, [0, 1] scale).
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, 1, 28, "train", "test", DECODED,
                                 _fashion_mnist_builder, mean=(0.2860,), std=(0.3530,)),
    # ImageNet and its evaluation-only companions (native size 0: varies per image).
    "imagenet2012": DatasetInfo("imagenet2012", 1000, 3, 0, "train", "validation", JPEG,
                                _imagenet_builder),
    "imagenet_v2": _imagenet_eval("imagenet_v2", eval_split="test"),
    "imagenet2012_real": _imagenet_eval("imagenet2012_real", eval_split="validation",
                                        label_key="original_label"),
    "imagenet_a": _imagenet_eval("imagenet_a", eval_split="test", class_subset=True),
    "imagenet_r": _imagenet_eval("imagenet_r", eval_split="test", class_subset=True),
    # Users' folders (class per subfolder, --config.source_dir); classes counted on prepare.
    "image_folder": DatasetInfo("image_folder", 0, 3, 0, "train", "validation", JPEG,
                                _image_folder_builder),
}
EVAL_ONLY = tuple(n for n, d in DATASETS.items() if not d.train_split)


def info(name: str) -> DatasetInfo:
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}")
  return DATASETS[name]


def dataset_builder(name: str, config, *, build: bool = True):
  """The prepared TFDS builder of dataset `name` (evaluation-only sets too)."""
  return info(name).get_builder(name, config, build)


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
          f"center or flip: set --config.eval_protocol=center")


def prepare(config):
  """Returns the prepared TFDS builder of `config.dataset`, building it once if needed."""
  return _prepare(config)[0]


def _prepare(config):
  """(builder of `config.dataset`, {name: builder} of the extra evaluation sets), after
  checking the config fits the dataset; the extra sets must be prepared already."""
  ds_info = info(config.dataset)
  name = ds_info.name
  if not ds_info.jpeg and augment.is_encoded(config.augment):
    raise DataError(f"augment {config.augment!r} crops encoded JPEGs (ImageNet-style "
                    f"datasets); for {name} use one of none, flip_crop")
  if not ds_info.train_split:
    raise DataError(f"{name} is an evaluation set; train on imagenet2012 and add it with "
                    f"--config.extra_eval_datasets={name}")
  from cnn_jax.data.eval_protocols import JPEG_ONLY, PROTOCOLS
  protocol = config.get("eval_protocol", "center")
  if protocol not in PROTOCOLS:
    raise DataError(f"unknown eval_protocol {protocol!r}; choose one of "
                    f"{', '.join(PROTOCOLS)}")
  if protocol in JPEG_ONLY and not ds_info.jpeg:
    raise DataError(protocol_needs_jpeg(protocol, name))
  extra = {}
  for extra_name in extra_eval_names(config):
    if extra_name not in EVAL_ONLY:
      raise DataError(f"extra_eval_datasets: {extra_name!r} is not an ImageNet evaluation "
                      f"set; choose from {', '.join(EVAL_ONLY)}")
    extra[extra_name] = dataset_builder(extra_name, config, build=False)
  builder = dataset_builder(name, config)
  check_files(builder)
  return builder, extra


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


def train_split(config, ds_info: DatasetInfo) -> str:
  """The training split, or its first `config.train_max_examples` examples (TFDS slice
  syntax) when that is positive: the small-training-set regime of the overfitting
  studies."""
  n = config.get("train_max_examples", -1)
  return f"{ds_info.train_split}[:{n}]" if n and n > 0 else ds_info.train_split


def create_input(config, *, model_spec, process_index: int = 0,
                 process_count: int = 1) -> Input:
  """Prepares `config.dataset` (once) and returns its per-process train and eval inputs.

  Encoded JPEGs (ImageNet: 1.28M images) reach the preprocessing undecoded, to be decoded
  and cropped in one step; they are never cached, each epoch is shuffled with its own seed
  so a resume skips epochs without reading them, mixup / cutmix run on the batch, and the
  extra evaluation sets are added. Decoded arrays (Fashion-MNIST) are cached in memory.
  """
  from cnn_jax.data import imagenet
  builder, extra_builders = _prepare(config)
  ds_info = info(config.dataset)
  if not ds_info.num_classes:  # image_folder: classes counted on prepare
    ds_info = dataclasses.replace(ds_info,
                                  num_classes=builder.info.features["label"].num_classes)
  mean, std = ds_info.mean or model_spec.mean, ds_info.std or model_spec.std
  read = dict(process_index=process_index, process_count=process_count)
  batch_fn = None
  if ds_info.jpeg:
    read.update(cache=False, decoders=imagenet.skip_decoding())
    mixup, cutmix = config.get("mixup_alpha", 0.0), config.get("cutmix_alpha", 0.0)
    if mixup > 0 or cutmix > 0:
      batch_fn = functools.partial(augment.mix_batch, mixup_alpha=mixup, cutmix_alpha=cutmix)
  split = train_split(config, ds_info)
  num_train = builder.info.splits[split].num_examples
  local_train = config.batch_size // process_count
  train_pre = ds_info.kind.train_preprocess(config, ds_info, model_spec, mean, std)

  def train_fn(start_step):
    return train_stream(builder, split, train_pre, local_batch_size=local_train,
                        seed=config.seed, start_step=start_step,
                        shuffle_buffer=config.shuffle_buffer, prefetch=config.prefetch,
                        batch_fn=batch_fn, seed_per_epoch=ds_info.jpeg, **read)

  def eval_input(b, eval_info: DatasetInfo):
    """(Split, iterator fn, class subset or None) of `eval_info`'s eval split; the dataset
    is built once, so a cached split is decoded once for every evaluation."""
    split = eval_info.eval_split
    max_examples = config.get("eval_max_examples", -1)
    local_eval = local_eval_batch(config.eval_batch_size, b.info.splits[split].num_examples,
                                  process_count=process_count, max_examples=max_examples,
                                  what=f"the {split} split of {eval_info.name}")
    pre = ds_info.kind.eval_preprocess(config, eval_info, model_spec, mean, std)
    ds, split_info = eval_batches(b, split, pre, local_batch_size=local_eval,
                                  max_examples=max_examples, **read)
    subset = (imagenet.class_subset(b, split, eval_info.label_key)
              if eval_info.class_subset else None)
    return split_info, ds.as_numpy_iterator, subset

  eval_split, eval_fn, _ = eval_input(builder, ds_info)
  # ImageNet's evaluation sets: no use to a model of decoded arrays (Fashion-MNIST's 1 channel).
  extra = ({name: eval_input(b, info(name)) for name, b in extra_builders.items()}
           if ds_info.jpeg else {})
  train = Split(num_train, local_train, num_train // config.batch_size)
  return Input(ds_info, builder, train, eval_split, train_fn, eval_fn, extra)
