"""Inception v2 (BN-Inception), v3, v4 and Inception-ResNet v1 / v2 on ImageNet.

  python -m cnn_jax.main --config=configs/inception.py:inception_v3 \
      --workdir=workdirs/inception_v3

The argument picks the model: inception_v2, inception_v3 (default), inception_v4,
inception_resnet_v1, inception_resnet_v2.
Smoke run (any machine): `python -m cnn_jax.main --config=configs/inception.py:inception_v3,smoke`
(20 steps of batch 16 on Fashion-MNIST, the 28 px images resized to image_size, 299 or
v2's 224; see configs/common.py smoke).

  inception_v2 (Ioffe & Szegedy 2015, Section 4.2.1): SGD with momentum 0.9, batch 32,
      learning rate 0.045 (Inception's x30), exponential decay 6x faster than
      GoogLeNet's x0.96 every 8 epochs (so every 8/6 epochs), weight decay reduced 5x
      (4e-5: TF-slim's value), dropout and LRN removed (model_kwargs dropout_rate=0.0;
      the model's default 0.2 is TF-slim's), lighter photometric distortions. Length not
      stated: 100 epochs here. Reported top-1 74.8 (single crop, BN-x30; the TF-slim
      layout followed here reaches 73.9).
  inception_v3 (Szegedy et al. 2015b, Section 8): RMSProp decay 0.9, eps 1.0 (momentum
      0.9 as TF-slim), batch 32 x 50 replicas, learning rate 0.045 x0.94 every 2 epochs,
      100 epochs, gradient clipping at 2.0, parameter moving average for evaluation;
      label smoothing 0.1 (Section 7), the BN auxiliary head with loss weight 0.4
      (TF-slim), dropout 0.2 (keep 0.8), weight decay 4e-5 (TF-slim), 299 px.
      Reported top-1 78.8 (21.2% error, single crop; Table 4).
  inception_v4, inception_resnet_v1, inception_resnet_v2 (Szegedy et al. 2016, Section
      4): RMSProp decay 0.9, eps 1.0, learning rate 0.045 x0.94 every 2 epochs, moving
      average of the parameters for evaluation; label smoothing 0.1, weight decay 4e-5,
      dropout 0.2 (keep 0.8) as TF-slim; 299 px. The paper states neither batch nor
      length: v3's batch 1600 and 100 epochs here. Reported single-crop top-1 (Table 2):
      v4 80.0, IR-v1 78.7, IR-v2 80.1.

Not run end-to-end here (no ImageNet on this machine).
"""

from configs import common, default

VARIANTS = ("inception_v2", "inception_v3", "inception_v4", "inception_resnet_v1",
            "inception_resnet_v2")


def rmsprop_recipe(c):
  """The recipe of Inception v3 (Section 8) that v4 / Inception-ResNet reuse (Section 4)."""
  c.optimizer = "rmsprop"
  c.rmsprop_decay = 0.9
  c.rmsprop_eps = 1.0
  c.momentum = 0.9
  c.batch_size = 32 * 50
  c.learning_rate = 0.045
  c.lr_schedule = "exponential"
  c.lr_decay_factor = 0.94
  c.lr_decay_every_epochs = 2.0
  c.num_epochs = 100.0
  c.weight_decay = 4e-5
  c.label_smoothing = 0.1
  c.ema_decay = 0.9999
  return c


def get_config(arg: str = "inception_v3"):
  args = common.parse_arg(arg, variants=VARIANTS, default_variant="inception_v3",
                          family="Inception", smoke=False)
  c = recipe(args.variant)
  return common.smoke(c) if args.smoke else c


def recipe(name: str):
  """The ImageNet config of variant `name`: the recipe in this module's docstring."""
  c = default.get_config()
  c.model = name
  c.model_kwargs = {}
  c.dataset = "imagenet2012"
  c.augment = "inception"
  c.eval_batch_size = 1000
  if name == "inception_v2":
    c.model_kwargs = {"dropout_rate": 0.0}  # Section 4.2.1: "Remove Dropout"
    c.image_size = 224
    c.optimizer = "sgd"
    c.momentum = 0.9
    c.batch_size = 32
    c.learning_rate = 0.045
    c.lr_schedule = "exponential"
    c.lr_decay_factor = 0.96
    c.lr_decay_every_epochs = 8.0 / 6.0
    c.num_epochs = 100.0
    c.weight_decay = 4e-5
    return c
  c = rmsprop_recipe(c)
  c.image_size = 299
  if name == "inception_v3":
    c.model_kwargs = {"aux_logits": True}
    c.aux_loss_weight = 0.4
    c.grad_clip_norm = 2.0
  return c


def cpu_study(name: str, steps: int, width_multiplier: float = 0.25,
              image_size: int | None = None, learning_rate: float | None = None,
              batch_size: int = 128, log_every: int = 20):
  """Inception `name` at the CPU scale of the studies in experiments/
  (batchnorm_speed.py, inception_v3_regularisers.py).

  Reductions, forced by 2 CPU cores: Fashion-MNIST resized from 28 px to `image_size`
  (default: 32 for inception_v2, whose total stride of 32 then leaves a 1x1 last map;
  75 for the others, the smallest input their VALID convs accept); every conv width
  x`width_multiplier` (model_kwargs; 0.25: v2's 3a 64/64/64/64/96/32 become
  16/16/16/16/24/8); batch `batch_size` (v2: 32, v3: 1600); `steps` steps, the recipe's
  exponential decay counted in Fashion-MNIST epochs (so nearly constant over a run of
  less than an epoch); no augmentation; no parameter moving average (a 0.9999 average of
  a few hundred steps is still the initialisation). Kept: the family's optimiser (v2:
  SGD momentum 0.9; the others: RMSProp decay 0.9, eps 1.0, momentum 0.9, clipping),
  weight decay 4e-5, dropout, label smoothing and aux head as the recipe sets them.
  `learning_rate` None keeps the recipe's 0.045.
  """
  c = recipe(name)
  size = image_size or (32 if name == "inception_v2" else 75)
  c = common.cpu_study(c, steps=steps, batch_size=batch_size, evals=2, log_every=log_every,
                       image_size=size)
  c.model_kwargs = {**c.model_kwargs, "width_multiplier": width_multiplier}
  if learning_rate is not None:
    c.learning_rate = learning_rate
  c.warmup_epochs = 0.0
  c.ema_decay = 0.0
  return c
