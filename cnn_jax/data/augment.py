"""Named training augmentations (the config's `augment` field), on single examples.

Each takes (image float32 HWC, rng_seed [2] int32) and returns the augmented image; they
use tf's stateless random ops so a seed and an example index fix the result.
"""

from __future__ import annotations


def none(image, rng_seed, **_):
  del rng_seed
  return image


def flip_crop(image, rng_seed, pad: int = 2, **_):
  """Random horizontal flip and a random crop from the image zero-padded by `pad` pixels.

  The standard light augmentation for 28-32 px datasets (CIFAR ResNets, He et al. 2015,
  Section 4.2, with 4 px; 2 px suits 28 px Fashion-MNIST).
  """
  import tensorflow as tf
  seeds = tf.random.experimental.stateless_split(rng_seed, 2)
  image = tf.image.stateless_random_flip_left_right(image, seeds[0])
  h, w, c = image.shape
  image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
  return tf.image.stateless_random_crop(image, [h, w, c], seeds[1])


AUGMENTATIONS = {"none": none, "flip_crop": flip_crop}


def get(name: str):
  if name not in AUGMENTATIONS:
    raise ValueError(f"unknown augment {name!r}; choose one of {', '.join(sorted(AUGMENTATIONS))}")
  return AUGMENTATIONS[name]
