"""EfficientNet B0-B7 on ImageNet with the paper's recipe (Tan & Le 2019, Sec. 5.2).

  python -m cnn_jax.main --config=configs/efficientnet.py:efficientnet_b0 \
      --workdir=workdirs/efficientnet_b0

The argument picks the variant (efficientnet_b0 .. efficientnet_b7; default b0); its
native resolution (224 / 240 / 260 / 300 / 380 / 456 / 528 / 600) is the image size,
and the model's registry entry gives the evaluation crop res/(res+32), bicubic.
Smoke run (any machine):
`python -m cnn_jax.main --config=configs/efficientnet.py:efficientnet_b0,smoke` (20 steps
of batch 16 on Fashion-MNIST, the 28 px images resized to the variant's resolution; see
configs/common.py smoke).

Recipe (Sec. 5.2): RMSProp decay 0.9, momentum 0.9, eps 1e-3; BatchNorm momentum 0.99;
batch 4096 (TPU v3), learning rate 0.256 = 0.016 x 4096/256 with 5 warm-up epochs, x0.97
every 2.4 epochs; 350 epochs; weight decay 1e-5; label smoothing 0.1; dropout 0.2 (B0)
rising to 0.5 (B7) and stochastic depth 0.2 (model defaults); AutoAugment; EMA 0.9999.
Reported single-crop top-1 (Table 2): B0 77.1, B1 79.1, B2 80.1, B3 81.6, B4 82.9,
B5 83.6, B6 84.0, B7 84.3. Not run end-to-end here (no ImageNet on this machine).
"""

from configs import common, default
from cnn_jax.models import spec

VARIANTS = tuple(f"efficientnet_b{i}" for i in range(8))


def get_config(arg: str = "efficientnet_b0"):
  args = common.parse_arg(arg, variants=VARIANTS, default_variant="efficientnet_b0",
                          family="EfficientNet", smoke=False)
  c = recipe(args.variant)
  return common.smoke(c) if args.smoke else c


def recipe(name: str):
  """The ImageNet config of variant `name`: the recipe in this module's docstring."""
  c = default.get_config()
  c.model = name
  # TF's BatchNorm (decay 0.99, eps 1e-3) as trained in the paper's code.
  c.model_kwargs = {"bn_momentum": 0.99, "bn_epsilon": 1e-3}
  c.dataset = "imagenet2012"
  c.image_size = spec(name).input_size
  c.augment = "autoaugment"
  c.batch_size = 4096
  c.eval_batch_size = 1024
  c.num_epochs = 350.0
  c.optimizer = "rmsprop"
  c.rmsprop_decay = 0.9
  c.rmsprop_eps = 1e-3
  c.momentum = 0.9
  c.learning_rate = 0.016 * 4096 / 256  # linear scaling from 0.016 per 256 images
  c.lr_schedule = "exponential"
  c.lr_decay_factor = 0.97
  c.lr_decay_every_epochs = 2.4
  c.warmup_epochs = 5.0
  c.weight_decay = 1e-5
  c.label_smoothing = 0.1
  c.ema_decay = 0.9999
  return c
