"""Decode + crop + augment of encoded JPEGs: the ImageNet papers' training augmentations.

Every function here takes the encoded bytes, not a decoded image: the crop window is
chosen from the JPEG header (`extract_jpeg_shape`) and only that window is decoded
(`decode_and_crop_jpeg`), which skips the IDCT of the pixels a crop throws away. A scale
augmentation ("resize the short side to S, take a random 224 crop") is therefore done as
"decode the window that becomes the 224 crop after resizing, then resize it to 224": the
same pixels, up to the resampling filter.

Outputs are float32 [size, size, 3] in [0, 255]; `pipeline.normalize` standardises them
with the model's mean/std afterwards. All randomness is stateless, from a [2] int32 seed.
"""

from __future__ import annotations

# AlexNet's PCA colour augmentation (Krizhevsky et al. 2012, Section 4.1): eigenvalues and
# eigenvectors of the 3x3 covariance of ImageNet RGB pixels in [0, 1], as published with
# fb.resnet.torch (the figures every reproduction uses).
PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009),
              (-0.5808, -0.0045, -0.8140),
              (-0.5836, -0.6948, 0.4203))


def _tf():
  import tensorflow as tf
  return tf


def _seeds(rng_seed, n: int):
  return _tf().unstack(_tf().random.experimental.stateless_split(rng_seed, n))


def _resize(image, size: int, method: str):
  tf = _tf()
  image = tf.image.resize(image, [size, size], method=method)
  return tf.clip_by_value(image, 0.0, 255.0)  # bicubic overshoots


# Training crops decode with libjpeg's fast integer IDCT: ~30% less decode time, pixel
# differences of a few levels at most, far below the augmentation's own changes.
# Evaluation keeps the accurate IDCT, so reported accuracies use the exact pixels.
TRAIN_DCT = "INTEGER_FAST"
EVAL_DCT = ""  # TF's default: libjpeg's accurate integer IDCT


def _decode_window(image_bytes, oy, ox, h, w, dct_method: str = EVAL_DCT):
  tf = _tf()
  window = tf.stack([oy, ox, h, w])
  return tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3,
                                       dct_method=dct_method)


def _jpeg_hw(image_bytes):
  tf = _tf()
  shape = tf.image.extract_jpeg_shape(image_bytes)
  return shape[0], shape[1]


def center_window(h, w, crop_fraction: float):
  """The centred square of side crop_fraction * short side (Szegedy et al.'s 0.875)."""
  tf = _tf()
  side = tf.cast(tf.round(crop_fraction * tf.cast(tf.minimum(h, w), tf.float32)), tf.int32)
  side = tf.maximum(side, 1)
  return (h - side + 1) // 2, (w - side + 1) // 2, side, side


def decode_and_center_crop(image_bytes, size: int, crop_fraction: float = 0.875,
                           method: str = "bilinear"):
  """Evaluation crop: resize the short side to size / crop_fraction, keep the centre
  size x size (equivalently: the centred crop_fraction of the short side, resized)."""
  h, w = _jpeg_hw(image_bytes)
  image = _decode_window(image_bytes, *center_window(h, w, crop_fraction))
  return _resize(_tf().cast(image, _tf().float32), size, method)


def _random_offset(limit, seed):
  tf = _tf()
  return tf.random.stateless_uniform([], seed, minval=0, maxval=tf.maximum(limit, 0) + 1,
                                     dtype=tf.int32)


def decode_and_scale_crop(image_bytes, rng_seed, size: int, short_side_range,
                          method: str = "bilinear"):
  """Resize the short side to S ~ U[short_side_range] (integer), then a random
  size x size crop: VGG's scale jittering (S in [256, 512], Simonyan & Zisserman 2014,
  Section 3.1) and ResNet's scale augmentation (S in [256, 480], He et al. 2015, 3.4)."""
  tf = _tf()
  s_seed, y_seed, x_seed = _seeds(rng_seed, 3)
  lo, hi = short_side_range
  scale = tf.random.stateless_uniform([], s_seed, minval=lo, maxval=hi + 1, dtype=tf.int32)
  h, w = _jpeg_hw(image_bytes)
  short = tf.minimum(h, w)
  side = tf.cast(tf.round(tf.cast(size * short, tf.float32) / tf.cast(scale, tf.float32)),
                 tf.int32)
  side = tf.clip_by_value(side, 1, short)
  oy, ox = _random_offset(h - side, y_seed), _random_offset(w - side, x_seed)
  image = _decode_window(image_bytes, oy, ox, side, side, TRAIN_DCT)
  return _resize(tf.cast(image, tf.float32), size, method)


def decode_and_alexnet_crop(image_bytes, rng_seed, size: int, resize: int,
                            method: str = "bilinear"):
  """AlexNet (Krizhevsky et al. 2012, Section 2): short side to `resize` (256), the
  central resize x resize patch, then a random size x size crop (224, or 227 as in Caffe)."""
  tf = _tf()
  y_seed, x_seed = _seeds(rng_seed, 2)
  h, w = _jpeg_hw(image_bytes)
  short = tf.minimum(h, w)
  side = tf.cast(tf.round(tf.cast(size * short, tf.float32) / float(resize)), tf.int32)
  side = tf.clip_by_value(side, 1, short)
  oy0, ox0 = (h - short) // 2, (w - short) // 2
  oy = oy0 + _random_offset(short - side, y_seed)
  ox = ox0 + _random_offset(short - side, x_seed)
  image = _decode_window(image_bytes, oy, ox, side, side, TRAIN_DCT)
  return _resize(tf.cast(image, tf.float32), size, method)


def decode_and_inception_crop(image_bytes, rng_seed, size: int,
                              area_range=(0.08, 1.0), aspect_range=(3 / 4, 4 / 3),
                              method: str = "bilinear", crop_fraction: float = 0.875):
  """Random-resized crop (Szegedy et al. 2014, Section 6): a window covering 8-100% of
  the area with aspect ratio in [3/4, 4/3]; TF's sampler, falling back to the centre
  crop when 10 attempts fail (as the TF / flax ImageNet references do)."""
  tf = _tf()
  shape = tf.image.extract_jpeg_shape(image_bytes)
  bbox = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4])
  begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      shape, bbox, seed=rng_seed, min_object_covered=0.1, aspect_ratio_range=aspect_range,
      area_range=area_range, max_attempts=10, use_image_if_no_bounding_boxes=True)
  oy, ox, _ = tf.unstack(begin)
  ch, cw, _ = tf.unstack(crop_size)
  failed = tf.logical_and(tf.equal(ch, shape[0]), tf.equal(cw, shape[1]))
  cy, cx, cs, _ = center_window(shape[0], shape[1], crop_fraction)
  oy, ox = tf.where(failed, cy, oy), tf.where(failed, cx, ox)
  ch, cw = tf.where(failed, cs, ch), tf.where(failed, cs, cw)
  image = _decode_window(image_bytes, oy, ox, ch, cw, TRAIN_DCT)
  return _resize(tf.cast(image, tf.float32), size, method)


def flip(image, rng_seed):
  return _tf().image.stateless_random_flip_left_right(image, rng_seed)


def pca_lighting(image, rng_seed, sigma: float = 0.1):
  """AlexNet's colour augmentation: add eigvec @ (alpha * eigval), alpha ~ N(0, sigma),
  one draw per image (Krizhevsky et al. 2012, Section 4.1). Image in [0, 255]."""
  tf = _tf()
  alpha = tf.random.stateless_normal([3], rng_seed, stddev=sigma)
  rgb = tf.linalg.matvec(tf.constant(PCA_EIGVEC, tf.float32),
                         alpha * tf.constant(PCA_EIGVAL, tf.float32))
  # bias_add, not `image + rgb`: TF's broadcast over a trailing 3 is ~4x slower.
  return tf.clip_by_value(tf.nn.bias_add(image, 255.0 * rgb), 0.0, 255.0)


def inception_color(image, rng_seed):
  """Inception's photometric distortions (TF-slim `distort_color`): brightness 32/255,
  saturation and contrast [0.5, 1.5], hue 0.2, in one of four orders chosen at random,
  clipped to the valid range once at the end (as TF-slim does: the ops in between see
  values out of range)."""
  tf = _tf()
  order_seed, b, s, h, c = _seeds(rng_seed, 5)
  x = image / 255.0
  ops = {
      "b": lambda x: tf.image.stateless_random_brightness(x, 32.0 / 255.0, b),
      "s": lambda x: tf.image.stateless_random_saturation(x, 0.5, 1.5, s),
      "h": lambda x: tf.image.stateless_random_hue(x, 0.2, h),
      "c": lambda x: tf.image.stateless_random_contrast(x, 0.5, 1.5, c),
  }
  orders = ("bshc", "sbch", "chbs", "hscb")  # TF-slim's four orderings

  def apply(order):
    def run():
      y = x
      for op in order:
        y = ops[op](y)
      return y
    return run

  pick = tf.random.stateless_uniform([], order_seed, minval=0, maxval=4, dtype=tf.int32)
  x = tf.switch_case(pick, [apply(o) for o in orders])
  x.set_shape(image.shape)
  return tf.clip_by_value(x, 0.0, 1.0) * 255.0


def scaled(value: int, size: int) -> int:
  """A pixel constant of the 224-pixel recipes, scaled to `size` (exact at 224)."""
  return int(round(value * size / 224)) if size not in (224, 227) else value


# The training recipes: (image_bytes, rng_seed, size, method, crop_fraction) -> image.
def alexnet(image_bytes, rng_seed, size, method="bilinear", crop_fraction=0.875, **_):
  crop, f, light = _seeds(rng_seed, 3)
  image = decode_and_alexnet_crop(image_bytes, crop, size, scaled(256, size), method)
  return pca_lighting(flip(image, f), light, sigma=0.1)


def vgg_scale_jitter(image_bytes, rng_seed, size, method="bilinear", crop_fraction=0.875,
                     **_):
  # VGG: S ~ U[256, 512], random 224 crop, flip, AlexNet's RGB colour shift (Section 3.1).
  crop, f, light = _seeds(rng_seed, 3)
  image = decode_and_scale_crop(image_bytes, crop, size,
                                (scaled(256, size), scaled(512, size)), method)
  return pca_lighting(flip(image, f), light, sigma=0.1)


def vgg_fixed_scale(image_bytes, rng_seed, size, method="bilinear", crop_fraction=0.875,
                    **_):
  # VGG with a fixed training scale S = 256 (Section 3.1; Table 3's single-scale rows).
  crop, f, light = _seeds(rng_seed, 3)
  image = decode_and_scale_crop(image_bytes, crop, size,
                                (scaled(256, size), scaled(256, size)), method)
  return pca_lighting(flip(image, f), light, sigma=0.1)


def resnet_scale(image_bytes, rng_seed, size, method="bilinear", crop_fraction=0.875, **_):
  # ResNet: short side ~ U[256, 480], random 224 crop, flip, standard colour augmentation
  # of AlexNet (He et al. 2015, Section 3.4).
  crop, f, light = _seeds(rng_seed, 3)
  image = decode_and_scale_crop(image_bytes, crop, size,
                                (scaled(256, size), scaled(480, size)), method)
  return pca_lighting(flip(image, f), light, sigma=0.1)


def inception(image_bytes, rng_seed, size, method="bilinear", crop_fraction=0.875, **_):
  crop, f, color = _seeds(rng_seed, 3)
  image = decode_and_inception_crop(image_bytes, crop, size, method=method,
                                    crop_fraction=crop_fraction)
  return inception_color(flip(image, f), color)


def inception_crop_flip(image_bytes, rng_seed, size, method="bilinear", crop_fraction=0.875):
  """The crop and flip EfficientNet applies before AutoAugment / RandAugment."""
  crop, f = _seeds(rng_seed, 2)
  image = decode_and_inception_crop(image_bytes, crop, size, method=method,
                                    crop_fraction=crop_fraction)
  return flip(image, f)


def center(image_bytes, rng_seed, size, method="bilinear", crop_fraction=0.875, **_):
  del rng_seed
  return decode_and_center_crop(image_bytes, size, crop_fraction, method)
