"""Named training augmentations (the config's `augment` field), on single examples.

Two kinds: per-image ones (`none`, `flip_crop`) take (image float32 HWC, rng_seed [2]
int32) and return the augmented image; the ImageNet recipes (`alexnet`, `vgg_scale_jitter`,
`resnet_scale`, `inception`, `autoaugment`, `randaugment`) are `EncodedAugmentation`s that
take the encoded JPEG and decode only their crop. Batch-level mixup / cutmix
(`mix_batch`) are switched on by the config's `mixup_alpha` / `cutmix_alpha`. All use tf's
stateless random ops, so a seed and an example index fix the result.
"""

from __future__ import annotations

import dataclasses
from typing import Callable


def none(image, rng_seed, **_):
  del rng_seed
  return image


def flip_crop(image, rng_seed, pad: int | None = None, **_):
  """Random horizontal flip and a random crop from the image zero-padded by `pad` pixels.

  The standard light augmentation for 28-32 px datasets (CIFAR ResNets, He et al. 2015,
  Section 4.2, with 4 px). The default pad is 1/14 of the side: 2 px for 28 px
  Fashion-MNIST, and the same relative shift when the images are resized up (7 px at
  100 px).
  """
  import tensorflow as tf
  seeds = tf.random.experimental.stateless_split(rng_seed, 2)
  image = tf.image.stateless_random_flip_left_right(image, seeds[0])
  h, w, c = image.shape
  pad = max(1, round(h / 14)) if pad is None else pad
  image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
  return tf.image.stateless_random_crop(image, [h, w, c], seeds[1])


AUGMENTATIONS = {"none": none, "flip_crop": flip_crop}


def get(name: str):
  if name not in AUGMENTATIONS:
    raise ValueError(f"unknown augment {name!r}; choose one of {', '.join(sorted(AUGMENTATIONS))}")
  return AUGMENTATIONS[name]


# --- ImageNet-style augmentations: they need the encoded JPEG ---------------------------
#
# A crop decided before decoding saves most of the decode (decode_and_crop_jpeg), so these
# take the encoded bytes instead of a float image; datasets that store JPEGs (imagenet2012,
# image_folder) use them, others reject them in `data.prepare` with a one-line error.


@dataclasses.dataclass(frozen=True)
class EncodedAugmentation:
  """(image_bytes, rng_seed, size, method=..., crop_fraction=..., normalize=...) ->
  float32 [size, size, 3] in [0, 255], or normalised when `normalize` = (mean, std) (the
  crop's last pass does it where it can); `post` (optional) runs on the uint8 crop."""
  crop: Callable
  post: Callable | None = None
  description: str = ""

  def __call__(self, image_bytes, rng_seed, size: int, method: str = "bilinear",
               crop_fraction: float = 0.875, normalize=None, **post_kwargs):
    import tensorflow as tf
    if self.post is None:
      return self.crop(image_bytes, rng_seed, size, method=method,
                       crop_fraction=crop_fraction, normalize=normalize)
    crop_seed, post_seed = tf.unstack(tf.random.experimental.stateless_split(rng_seed, 2))
    image = self.crop(image_bytes, crop_seed, size, method=method, crop_fraction=crop_fraction)
    image = self.post(tf.cast(tf.round(image), tf.uint8), post_seed, **post_kwargs)
    from cnn_jax.data.pipeline import normalized
    return normalized(tf.cast(image, tf.float32), normalize)


def _encoded():
  from cnn_jax.data import autoaugment as aa
  from cnn_jax.data import imagenet_preprocess as ip

  def rand_post(image, seed, randaugment_layers=2, randaugment_magnitude=10.0, **_):
    return aa.randaugment(image, seed, randaugment_layers, randaugment_magnitude)

  return {
      "alexnet": EncodedAugmentation(
          ip.alexnet, description="256 resize, random 224/227 crop, flip, PCA colour 0.1"),
      "vgg_scale_jitter": EncodedAugmentation(
          ip.vgg_scale_jitter, description="short side S ~ U[256, 512], 224 crop, flip, PCA"),
      "vgg_fixed_scale": EncodedAugmentation(
          ip.vgg_fixed_scale, description="short side S = 256, 224 crop, flip, PCA"),
      "resnet_scale": EncodedAugmentation(
          ip.resnet_scale, description="short side ~ U[256, 480], 224 crop, flip, PCA"),
      "inception": EncodedAugmentation(
          ip.inception, description="random-resized crop 8-100%, aspect 3/4-4/3, flip, "
                                    "colour distortion"),
      "autoaugment": EncodedAugmentation(
          ip.inception_crop_flip, post=lambda image, seed, **_: aa.autoaugment(image, seed),
          description="inception crop, flip, AutoAugment ImageNet policy (EfficientNet)"),
      "randaugment": EncodedAugmentation(
          ip.inception_crop_flip, post=rand_post,
          description="inception crop, flip, RandAugment N=2 M=10 (EfficientNet)"),
  }


ENCODED_AUGMENTATIONS = _encoded()
AUGMENTATIONS.update(ENCODED_AUGMENTATIONS)


def is_encoded(name: str) -> bool:
  return isinstance(AUGMENTATIONS.get(name), EncodedAugmentation)


# --- batch-level: mixup (Zhang et al. 2018) and cutmix (Yun et al. 2019) -----------------


def _beta(seed, alpha: float):
  import tensorflow as tf
  s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  a = tf.random.stateless_gamma([], s1, alpha)
  b = tf.random.stateless_gamma([], s2, alpha)
  return a / (a + b)


def mix_batch(batch, rng_seed, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0):
  """Mixes each example with the batch reversed, one lambda ~ Beta(alpha, alpha) per batch.

  With both alphas set, each batch picks mixup or cutmix with probability 1/2 (timm's
  switch). Adds 'mix_label' (the partner's label) and 'mix_weight' (lambda, per example):
  the loss is  w * CE(label) + (1 - w) * CE(mix_label). Cutmix's lambda is the kept area.
  """
  import tensorflow as tf
  pick_seed, lam_seed, box_seed = tf.unstack(tf.random.experimental.stateless_split(rng_seed, 3))
  image, label = batch["image"], batch["label"]
  partner = tf.reverse(image, [0])
  n, h, w = tf.shape(image)[0], tf.shape(image)[1], tf.shape(image)[2]

  def mixup():
    lam = _beta(lam_seed, mixup_alpha)
    return lam * image + (1.0 - lam) * partner, lam

  def cutmix():
    lam = _beta(lam_seed, cutmix_alpha)
    cut = tf.sqrt(1.0 - lam)
    ch = tf.cast(tf.cast(h, tf.float32) * cut, tf.int32)
    cw = tf.cast(tf.cast(w, tf.float32) * cut, tf.int32)
    sy, sx = tf.unstack(tf.random.experimental.stateless_split(box_seed, 2))
    cy = tf.random.stateless_uniform([], sy, 0, h, dtype=tf.int32)
    cx = tf.random.stateless_uniform([], sx, 0, w, dtype=tf.int32)
    y0, y1 = tf.maximum(cy - ch // 2, 0), tf.minimum(cy + ch // 2, h)
    x0, x1 = tf.maximum(cx - cw // 2, 0), tf.minimum(cx + cw // 2, w)
    ys, xs = tf.range(h)[:, None], tf.range(w)[None, :]
    box = (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)
    mixed = tf.where(box[None, :, :, None], partner, image)
    kept = 1.0 - tf.cast((y1 - y0) * (x1 - x0), tf.float32) / tf.cast(h * w, tf.float32)
    return mixed, kept

  if mixup_alpha > 0 and cutmix_alpha > 0:
    use_cutmix = tf.random.stateless_uniform([], pick_seed) < 0.5
    mixed, lam = tf.cond(use_cutmix, cutmix, mixup)
  elif cutmix_alpha > 0:
    mixed, lam = cutmix()
  elif mixup_alpha > 0:
    mixed, lam = mixup()
  else:
    return batch
  mixed = tf.ensure_shape(mixed, batch["image"].shape)
  return dict(batch, image=mixed, mix_label=tf.reverse(label, [0]),
              mix_weight=tf.fill([n], tf.cast(lam, tf.float32)))
