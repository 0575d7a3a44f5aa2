"""MobileNet v1 / v2 / v3 on ImageNet with their papers' recipes.

  python -m cnn_jax.main --config=configs/mobilenet.py:mobilenet_v2 \
      --workdir=workdirs/mobilenet_v2
  python -m cnn_jax.main --config=configs/mobilenet.py:mobilenet_v1 \
      --config.model_kwargs.width_multiplier=0.5 --config.image_size=160

The argument picks the model: mobilenet_v1 (default), mobilenet_v2, mobilenet_v3_large,
mobilenet_v3_small. All use RMSProp (TF-style: eps inside the square root) and the
Inception preprocessing; evaluation is a single 224 centre crop.
Smoke run (any machine): `python -m cnn_jax.main --config=configs/mobilenet.py:mobilenet_v1,smoke`
(20 steps of batch 16 on Fashion-MNIST, the 28 px images resized to 224; see
configs/common.py smoke).

  v1 (Howard et al. 2017, Sec. 4): RMSProp with asynchronous updates, 0.045 x0.98 per
     epoch (TF-slim train_image_classifier defaults: decay 0.9, momentum 0.9, eps 1.0),
     little or no weight decay on depthwise filters (TF-slim: 4e-5 elsewhere; this
     trainer decays every weight), no label smoothing, fewer small crops than Inception's
     preprocessing. Batch and length are not stated: v2's batch is used. width_multiplier 1.0 / 0.75 / 0.5 / 0.25 (Table 6):
     top-1 70.6 / 68.4 / 63.7 / 50.6; resolution 224 / 192 / 160 / 128 via image_size.
  v2 (Sandler et al. 2018, Sec. 6.1): RMSProp decay 0.9, momentum 0.9, batch 96 x 16
     GPUs, 0.045 x0.98 per epoch, weight decay 4e-5, dropout 0.2 (model default), label
     smoothing 0.1 (TF-slim), EMA 0.9999. Top-1 72.0 (Table 4).
  v3 (Howard et al. 2019, Sec. 6.1): RMSProp momentum 0.9, batch 4096, 0.1 x0.01 every
     3 epochs (as the paper states it), weight decay 1e-5, dropout 0.2 (keep 0.8),
     BatchNorm decay 0.99, EMA 0.9999. Top-1 large 75.2, small 67.4.
Training length is not stated in any of the three papers; 200 epochs is this config's
choice. Not run end-to-end here (no ImageNet on this machine).
"""

from configs import common, default

VARIANTS = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")


def get_config(arg: str = "mobilenet_v1"):
  args = common.parse_arg(arg, variants=VARIANTS, default_variant="mobilenet_v1",
                          family="MobileNet", smoke=False)
  c = recipe(args.variant)
  return common.smoke(c) if args.smoke else c


def recipe(name: str):
  """The ImageNet config of variant `name`: the recipe in this module's docstring."""
  c = default.get_config()
  c.model = name
  c.dataset = "imagenet2012"
  c.image_size = 224
  c.augment = "inception"
  c.eval_batch_size = 1000
  c.num_epochs = 200.0
  c.optimizer = "rmsprop"
  c.rmsprop_decay = 0.9
  c.rmsprop_eps = 1.0
  c.momentum = 0.9
  c.lr_schedule = "exponential"
  if name == "mobilenet_v1":
    c.model_kwargs = {"width_multiplier": 1.0, "act": "relu"}
    c.batch_size = 96 * 16
    c.learning_rate = 0.045
    c.lr_decay_factor = 0.98
    c.lr_decay_every_epochs = 1.0
    c.weight_decay = 4e-5
  elif name == "mobilenet_v2":
    c.model_kwargs = {"width_multiplier": 1.0}
    c.batch_size = 96 * 16
    c.learning_rate = 0.045
    c.lr_decay_factor = 0.98
    c.lr_decay_every_epochs = 1.0
    c.weight_decay = 4e-5
    c.label_smoothing = 0.1
    c.ema_decay = 0.9999
  else:
    c.model_kwargs = {"width_multiplier": 1.0, "bn_momentum": 0.99}
    c.batch_size = 4096
    c.learning_rate = 0.1
    c.lr_decay_factor = 0.01
    c.lr_decay_every_epochs = 3.0
    c.weight_decay = 1e-5
    c.ema_decay = 0.9999
  return c


def cpu_study(name: str, steps: int, *, width_multiplier: float = 0.5, image_size: int = 32,
              batch_size: int = 64, log_every: int = 25):
  """MobileNet `name` at the CPU scale of the studies in experiments/
  (mobilenet_separable.py, mobilenet_v2_linear_bottleneck.py).

  Reductions, forced by 2 CPU cores: Fashion-MNIST resized from 28 to `image_size` px (32:
  the total stride of 32 leaves a 1x1 last map, as 224 leaves 7x7); width
  x`width_multiplier`; `steps` steps of `batch_size` with SGD momentum 0.9, learning rate
  0.1 and a cosine decay instead of RMSProp over hundreds of epochs with an exponential
  decay (short RMSProp runs were not tuned here); no augmentation, no label smoothing, no
  parameter averaging. Kept: BatchNorm, weight decay 4e-5, the classifier dropout.
  """
  c = common.cpu_study(recipe(name), steps=steps, batch_size=batch_size, evals=2,
                       log_every=log_every, image_size=image_size)
  c.model_kwargs.width_multiplier = width_multiplier
  return common.short_sgd(c, learning_rate=0.1)
