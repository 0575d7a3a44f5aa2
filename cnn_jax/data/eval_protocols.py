"""The papers' evaluation protocols on encoded JPEGs, and the logit averaging over views.

  center    resize + centre crop with the model's crop fraction (0.875; res/(res+32) for
            EfficientNet, from the registry spec): batch['image'] is [B, S, S, 3]
  flip      the centre view and its mirror, scores averaged (the cheapest test-time
            augmentation; also for datasets of decoded arrays such as Fashion-MNIST):
            [B, 2, S, S, C]
  ten_crop  4 corners + centre of the image resized to S / crop_fraction (256 for 224),
            each with its mirror (Krizhevsky et al. 2012, Section 4.1): [B, 10, S, S, 3]
  dense     VGG's multi-scale dense evaluation (Simonyan & Zisserman 2014, Section 3.2):
            the short side resized to each scale Q, the image and its flip fed whole to a
            fully-convolutional model whose class map is averaged: batch['image@Q'] is
            [B, 2, Q, Q, 3] per scale. To batch images of different aspect ratios, the
            view is the largest centred Q x Q square (VGG used the uncropped image).

The model side (running every view and averaging the scores: `predict`) lives beside the
eval step in cnn_jax/train/steps.py.
"""

from __future__ import annotations

from cnn_jax.data import imagenet_preprocess as ip

PROTOCOLS = ("center", "flip", "ten_crop", "dense")
# The protocols that need the encoded full-size image (their crops are cut from it); the
# others also run on datasets of decoded arrays.
JPEG_ONLY = ("ten_crop", "dense")
# VGG's dense multi-scale test scales for jittered training S in [256, 512] (Table 4).
DENSE_SCALES = (256, 384, 512)


def _tf():
  import tensorflow as tf
  return tf


def dense_scales(size: int, scales=None) -> tuple[int, ...]:
  return tuple(scales) if scales else tuple(ip.scaled(q, size) for q in DENSE_SCALES)


def _decode_short_side(image_bytes, short: int, method: str):
  """The whole image, resized so its short side is `short` (float32 in [0, 255])."""
  tf = _tf()
  image = tf.cast(tf.io.decode_jpeg(image_bytes, channels=3), tf.float32)
  h, w = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
  scale = short / tf.minimum(h, w)
  new_h = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), short)
  new_w = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), short)
  return ip.resize_image(image, tf.stack([new_h, new_w]), method)


def ten_crop(image_bytes, size: int, crop_fraction: float = 0.875, method: str = "bilinear"):
  """[10, size, size, 3]: corners (tl, tr, bl, br), centre, then their mirrors."""
  tf = _tf()
  image = _decode_short_side(image_bytes, int(round(size / crop_fraction)), method)
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  offsets = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size),
             ((h - size) // 2, (w - size) // 2)]
  crops = tf.stack([image[oy:oy + size, ox:ox + size] for oy, ox in offsets])
  crops = tf.ensure_shape(crops, [5, size, size, 3])
  return tf.concat([crops, tf.reverse(crops, [2])], axis=0)


def dense_view(image_bytes, scale: int, method: str = "bilinear"):
  """[2, scale, scale, 3]: the centred square of the image at short side `scale`, and its
  mirror (VGG averages the class scores of an image and its flip)."""
  tf = _tf()
  image = _decode_short_side(image_bytes, scale, method)
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  oy, ox = (h - scale) // 2, (w - scale) // 2
  return with_mirror(tf.ensure_shape(image[oy:oy + scale, ox:ox + scale], [scale, scale, 3]))


def with_mirror(image):
  """[2, H, W, C]: `image` [H, W, C] and its left-right mirror."""
  tf = _tf()
  return tf.stack([image, tf.reverse(image, [1])])


def views(image_bytes, protocol: str, size: int, crop_fraction: float = 0.875,
          method: str = "bilinear", scales=None) -> dict:
  """The protocol's views of one encoded image, float32 in [0, 255], keyed 'image*'."""
  if protocol in ("center", "flip"):
    image = ip.decode_and_center_crop(image_bytes, size, crop_fraction, method)
    return {"image": with_mirror(image) if protocol == "flip" else image}
  if protocol == "ten_crop":
    return {"image": ten_crop(image_bytes, size, crop_fraction, method)}
  if protocol == "dense":
    return {f"image@{q}": dense_view(image_bytes, q, method) for q in dense_scales(size, scales)}
  raise ValueError(f"unknown eval protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
