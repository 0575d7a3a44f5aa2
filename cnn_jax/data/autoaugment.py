"""AutoAugment (Cubuk et al. 2018) and RandAugment (Cubuk et al. 2019) in TF ops, as
EfficientNet trains with them (Tan & Le 2019; the policy, magnitudes and constants follow
the `autoaugment.py` published with EfficientNet: ImageNet policy v0, cutout 100 px,
translate 250 px at 224 px, geometric fill 128).

Every random choice is a stateless op on a [2] int32 seed, so an example's augmentation
is fixed by (seed, its index). Images are uint8 [H, W, 3].
"""

from __future__ import annotations

import math

MAX_LEVEL = 10.0
FILL = 128

# EfficientNet's ImageNet policy ("v0"): 25 sub-policies of two (op, probability, level).
POLICY_V0 = (
    (("Equalize", 0.8, 1), ("ShearY", 0.8, 4)),
    (("Color", 0.4, 9), ("Equalize", 0.6, 3)),
    (("Color", 0.4, 1), ("Rotate", 0.6, 8)),
    (("Solarize", 0.8, 3), ("Equalize", 0.4, 7)),
    (("Solarize", 0.4, 2), ("Solarize", 0.6, 2)),
    (("Color", 0.2, 0), ("Equalize", 0.8, 8)),
    (("Equalize", 0.4, 8), ("SolarizeAdd", 0.8, 3)),
    (("ShearX", 0.2, 9), ("Rotate", 0.6, 8)),
    (("Color", 0.6, 1), ("Equalize", 1.0, 2)),
    (("Invert", 0.4, 9), ("Rotate", 0.6, 0)),
    (("Equalize", 1.0, 9), ("ShearY", 0.6, 3)),
    (("Color", 0.4, 7), ("Equalize", 0.6, 0)),
    (("Posterize", 0.4, 6), ("AutoContrast", 0.4, 7)),
    (("Solarize", 0.6, 8), ("Color", 0.6, 9)),
    (("Solarize", 0.2, 4), ("Rotate", 0.8, 9)),
    (("Rotate", 1.0, 7), ("TranslateY", 0.8, 9)),
    (("ShearX", 0.0, 0), ("Solarize", 0.8, 4)),
    (("ShearY", 0.8, 0), ("Color", 0.6, 4)),
    (("Color", 1.0, 0), ("Rotate", 0.6, 2)),
    (("Equalize", 0.8, 4), ("Equalize", 0.0, 8)),
    (("Equalize", 1.0, 4), ("AutoContrast", 0.6, 2)),
    (("ShearY", 0.4, 7), ("SolarizeAdd", 0.6, 7)),
    (("Posterize", 0.8, 2), ("Solarize", 0.6, 10)),
    (("Solarize", 0.6, 8), ("Equalize", 0.6, 1)),
    (("Color", 0.8, 6), ("Rotate", 0.4, 5)),
)

RANDAUGMENT_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize",
                   "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY",
                   "TranslateX", "TranslateY", "Cutout", "SolarizeAdd")


def _tf():
  import tensorflow as tf
  return tf


# --- the image operations (uint8 in, uint8 out) ---------------------------------------

def _blend(a, b, factor):
  """a + factor * (b - a), clipped: factor 0 gives a, 1 gives b, > 1 extrapolates."""
  tf = _tf()
  a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
  return tf.cast(tf.clip_by_value(a + factor * (b - a), 0.0, 255.0), tf.uint8)


def _gray(image):
  tf = _tf()
  return tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))


def color(image, factor):
  return _blend(_gray(image), image, factor)


def contrast(image, factor):
  tf = _tf()
  mean = tf.reduce_mean(tf.cast(tf.image.rgb_to_grayscale(image), tf.float32))
  return _blend(tf.fill(tf.shape(image), mean), image, factor)


def brightness(image, factor):
  return _blend(_tf().zeros_like(image), image, factor)


def sharpness(image, factor):
  tf = _tf()
  x = tf.cast(image, tf.float32)[None]
  kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
  kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
  smooth = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "VALID")[0]
  smooth = tf.cast(tf.clip_by_value(tf.round(smooth), 0.0, 255.0), tf.uint8)
  # The border keeps the original pixels (PIL's ImageEnhance.Sharpness).
  degenerate = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
  mask = tf.pad(tf.ones_like(smooth), [[1, 1], [1, 1], [0, 0]])
  degenerate = tf.where(mask > 0, degenerate, image)
  return _blend(degenerate, image, factor)


def posterize(image, bits):
  tf = _tf()
  shift = tf.cast(8 - bits, tf.uint8)
  return tf.bitwise.left_shift(tf.bitwise.right_shift(image, shift), shift)


def solarize(image, threshold):
  tf = _tf()
  return tf.where(tf.cast(image, tf.int32) < threshold, image, 255 - image)


def solarize_add(image, addition, threshold=128):
  tf = _tf()
  added = tf.cast(tf.clip_by_value(tf.cast(image, tf.int32) + addition, 0, 255), tf.uint8)
  return tf.where(tf.cast(image, tf.int32) < threshold, added, image)


def invert(image):
  return 255 - image


def autocontrast(image):
  """Per channel, stretch [min, max] to [0, 255]."""
  tf = _tf()
  x = tf.cast(image, tf.float32)
  lo = tf.reduce_min(x, axis=[0, 1])
  hi = tf.reduce_max(x, axis=[0, 1])
  scale = tf.where(hi > lo, 255.0 / tf.maximum(hi - lo, 1.0), 1.0)
  offset = tf.where(hi > lo, lo, 0.0)
  return tf.cast(tf.clip_by_value((x - offset) * scale, 0.0, 255.0), tf.uint8)


def equalize(image):
  """Per-channel histogram equalisation, PIL's ImageOps.equalize algorithm."""
  tf = _tf()

  def channel(c):
    hist = tf.histogram_fixed_width(tf.cast(c, tf.int32), [0, 255], nbins=256)
    nonzero = tf.boolean_mask(hist, hist > 0)
    step = (tf.reduce_sum(nonzero) - nonzero[-1]) // 255
    lut = (tf.cumsum(hist) + step // 2) // tf.maximum(step, 1)
    lut = tf.clip_by_value(tf.concat([[0], lut[:-1]], 0), 0, 255)
    return tf.where(step == 0, c, tf.cast(tf.gather(lut, tf.cast(c, tf.int32)), tf.uint8))

  return tf.stack([channel(image[..., i]) for i in range(3)], axis=-1)


def _transform(image, matrix):
  """Projective transform (output pixel -> input pixel), nearest, filled with FILL."""
  tf = _tf()
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=tf.cast(image, tf.float32)[None], transforms=tf.cast(matrix, tf.float32)[None],
      output_shape=tf.stack([h, w]), fill_value=float(FILL), interpolation="NEAREST",
      fill_mode="CONSTANT")
  return tf.cast(out[0], tf.uint8)


def rotate(image, degrees):
  tf = _tf()
  theta = degrees * math.pi / 180.0
  h, w = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
  cos, sin = tf.cos(theta), tf.sin(theta)
  x_off = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2.0
  y_off = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2.0
  return _transform(image, tf.stack([cos, -sin, x_off, sin, cos, y_off, 0.0, 0.0]))


def shear_x(image, level):
  return _transform(image, _tf().stack([1.0, level, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]))


def shear_y(image, level):
  return _transform(image, _tf().stack([1.0, 0.0, 0.0, level, 1.0, 0.0, 0.0, 0.0]))


def translate_x(image, pixels):
  return _transform(image, _tf().stack([1.0, 0.0, -pixels, 0.0, 1.0, 0.0, 0.0, 0.0]))


def translate_y(image, pixels):
  return _transform(image, _tf().stack([1.0, 0.0, 0.0, 0.0, 1.0, -pixels, 0.0, 0.0]))


def cutout(image, pad, seed):
  """A (2 pad)^2 square at a uniformly random centre set to FILL."""
  tf = _tf()
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  cy = tf.random.stateless_uniform([], seed, 0, h, dtype=tf.int32)
  cx = tf.random.stateless_uniform([], seed + 1, 0, w, dtype=tf.int32)
  ys, xs = tf.range(h)[:, None], tf.range(w)[None, :]
  inside = (tf.abs(ys - cy) < pad) & (tf.abs(xs - cx) < pad)
  return tf.where(inside[..., None], tf.constant(FILL, tf.uint8), image)


# --- levels to arguments (EfficientNet's level_to_arg with its ImageNet hparams) -------

def _apply(name: str, image, level: float, seed, size: int):
  """Applies op `name` at `level` in [0, 10]; `seed` fixes the random sign / position."""
  tf = _tf()
  frac = level / MAX_LEVEL
  sign = tf.where(tf.random.stateless_uniform([], seed) < 0.5, -1.0, 1.0)
  enhance = frac * 1.8 + 0.1
  translate = 250.0 * size / 224.0  # EfficientNet's translate_const at 224 px
  if name == "AutoContrast":
    return autocontrast(image)
  if name == "Equalize":
    return equalize(image)
  if name == "Invert":
    return invert(image)
  if name == "Rotate":
    return rotate(image, sign * frac * 30.0)
  if name == "Posterize":
    return posterize(image, int(frac * 4))
  if name == "Solarize":
    return solarize(image, int(frac * 256))
  if name == "SolarizeAdd":
    return solarize_add(image, int(frac * 110))
  if name == "Color":
    return color(image, enhance)
  if name == "Contrast":
    return contrast(image, enhance)
  if name == "Brightness":
    return brightness(image, enhance)
  if name == "Sharpness":
    return sharpness(image, enhance)
  if name == "ShearX":
    return shear_x(image, sign * frac * 0.3)
  if name == "ShearY":
    return shear_y(image, sign * frac * 0.3)
  if name == "TranslateX":
    return translate_x(image, sign * frac * translate)
  if name == "TranslateY":
    return translate_y(image, sign * frac * translate)
  if name == "Cutout":
    return cutout(image, max(1, int(frac * 100 * size / 224)), seed)
  raise ValueError(f"unknown AutoAugment op {name!r}")


def _with_prob(name, image, prob, level, seed, size):
  tf = _tf()
  p_seed, op_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  apply = tf.random.stateless_uniform([], p_seed) < prob
  return tf.cond(apply, lambda: _apply(name, image, level, op_seed, size), lambda: image)


def autoaugment(image, rng_seed, policy=POLICY_V0):
  """One sub-policy of `policy`, chosen uniformly; each of its ops with its probability."""
  tf = _tf()
  size = image.shape[0] or 224
  pick_seed, *op_seeds = tf.unstack(tf.random.experimental.stateless_split(rng_seed, 3))
  pick = tf.random.stateless_uniform([], pick_seed, 0, len(policy), dtype=tf.int32)

  def branch(sub_policy):
    def run():
      x = image
      for (name, prob, level), seed in zip(sub_policy, op_seeds):
        x = _with_prob(name, x, prob, float(level), seed, size)
      return x
    return run

  out = tf.switch_case(pick, [branch(sp) for sp in policy])
  out.set_shape(image.shape)
  return out


def randaugment(image, rng_seed, num_layers: int = 2, magnitude: float = 10.0):
  """`num_layers` ops drawn uniformly from RANDAUGMENT_OPS, each applied with a
  probability drawn from U[0.2, 0.8], all at `magnitude` (EfficientNet's variant)."""
  tf = _tf()
  size = image.shape[0] or 224
  seeds = tf.unstack(tf.random.experimental.stateless_split(rng_seed, 3 * num_layers))
  for layer in range(num_layers):
    pick_seed, prob_seed, op_seed = seeds[3 * layer: 3 * layer + 3]
    pick = tf.random.stateless_uniform([], pick_seed, 0, len(RANDAUGMENT_OPS), dtype=tf.int32)
    prob = tf.random.stateless_uniform([], prob_seed, 0.2, 0.8)
    branches = [
        (lambda name=name, x=image: _with_prob(name, x, prob, magnitude, op_seed, size))
        for name in RANDAUGMENT_OPS]
    image_shape = image.shape
    image = tf.switch_case(pick, branches)
    image.set_shape(image_shape)
  return image
