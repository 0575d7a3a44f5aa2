"""AlexNet on ImageNet: the 2012 paper's two-tower net and recipe, or torchvision's layout.

  python -m cnn_jax.main --config=configs/alexnet.py --workdir=workdirs/alexnet
  python -m cnn_jax.main --config=configs/alexnet.py:alexnet_torchvision \
      --workdir=workdirs/alexnet_torchvision

Smoke run (any machine): `python -m cnn_jax.main --config=configs/alexnet.py:alexnet,smoke`
(20 steps of batch 16 on Fashion-MNIST, the 28 px images resized to 227; see
configs/common.py smoke).

alexnet (Krizhevsky, Sutskever & Hinton 2012, Section 5): SGD, batch 128, momentum 0.9,
weight decay 5e-4 (added to the gradient as 5e-4 * w: the 'l2' mode), learning rate 0.01
divided by 10 when the validation error stopped improving, three times in ~90 epochs
(the paper's plateaus; the epochs 30/60/80 here are a fixed stand-in). Weights N(0, 0.01),
biases 1 in conv2/4/5 and fc6/fc7 (model default weight_init='paper'); dropout 0.5 on
fc6/fc7 (model default). Augmentation (Section 4.1): random 224 (here 227) crops of the
256x256 image, flips, PCA colour noise sigma 0.1 ('alexnet'). Reported: top-1 59.3 /
top-5 81.8 on validation for one net with 10-crop evaluation (Table 2: 40.7 / 18.2 error);
the trainer's evaluation is one centre crop unless a ten-crop protocol is selected.

alexnet_torchvision: torchvision's reference recipe (references/classification: SGD
momentum 0.9, batch 256, lr 0.01 /10 every 30 epochs, 90 epochs, weight decay 1e-4,
random-resized crop + flip), top-1 56.5 (torchvision's weights).

Not run end-to-end here (no ImageNet on this machine).
"""

from configs import common, default

VARIANTS = ("alexnet", "alexnet_torchvision")


def torchvision_recipe(c):
  """torchvision's reference recipe for AlexNet and VGG (also used by configs/vgg.py)."""
  c.augment = "inception"  # RandomResizedCrop(224) + horizontal flip
  c.batch_size = 256
  c.num_epochs = 90.0
  c.optimizer = "sgd"
  c.momentum = 0.9
  c.learning_rate = 0.01
  c.lr_schedule = "step"
  c.lr_decay_epochs = (30, 60)
  c.lr_decay_factor = 0.1
  c.weight_decay = 1e-4
  return c


def get_config(arg: str = "alexnet"):
  args = common.parse_arg(arg, variants=VARIANTS, default_variant="alexnet",
                          family="AlexNet", smoke=False)
  c = recipe(args.variant)
  return common.smoke(c) if args.smoke else c


def recipe(name: str):
  """The ImageNet config of variant `name`: the recipe in this module's docstring."""
  c = default.get_config()
  c.model = name
  c.dataset = "imagenet2012"
  c.eval_batch_size = 1000
  c.label_smoothing = 0.0
  if name == "alexnet_torchvision":
    c.model_kwargs = {"weight_init": "he", "dense_eval": False}
    c.image_size = 224
    return torchvision_recipe(c)
  c.model_kwargs = {"weight_init": "paper", "dense_eval": False}
  c.image_size = 227  # Section 3.5 says 224, which does not give the 55x55 conv1 map
  c.augment = "alexnet"
  c.batch_size = 128
  c.num_epochs = 90.0
  c.optimizer = "sgd"
  c.momentum = 0.9
  c.learning_rate = 0.01
  c.lr_schedule = "step"
  c.lr_decay_epochs = (30, 60, 80)
  c.lr_decay_factor = 0.1
  c.weight_decay = 5e-4
  c.weight_decay_mode = "l2"
  c.eval_protocol = "ten_crop"  # Section 4.1: 5 crops and their flips, scores averaged
  return c


def cpu_study(steps: int, *, name: str = "alexnet", image_size: int = 100,
              width_multiplier: float = 0.25, fc: int = 256, batch_size: int = 128,
              evals: int = 2, log_every: int = 10):
  """AlexNet (or ZFNet: `name`) at the CPU scale of the studies in experiments/
  (alexnet_relu.py, alexnet_regularisation.py, zfnet_first_layer.py).

  Reductions, forced by 2 CPU cores: Fashion-MNIST resized from 28 to `image_size` px
  (100 px leaves a 2x2 map before fc6 in both AlexNet and ZFNet, as 227 / 224 px leave 6x6:
  fc_window=2); conv widths x`width_multiplier` (0.25: 24-64-96-96-64 instead of
  96-256-384-384-256); fc6/fc7 of `fc` units instead of 4096; `steps` steps of
  `batch_size` with a cosine decay instead of ~90 epochs with /10 on plateaus; no
  augmentation; Glorot initialisation instead of N(0, 0.01) (with which the narrow nets
  stay at chance for hundreds of steps). Kept: the layer layout (grouped convs, LRN /
  contrast normalisation, overlapping pools), ReLU, dropout 0.5 on fc6/fc7, SGD momentum
  0.9, weight decay 5e-4.
  """
  c = common.cpu_study(recipe(name) if name != "zfnet" else _zfnet_recipe(), steps=steps,
                       batch_size=batch_size, evals=evals, log_every=log_every,
                       image_size=image_size)
  c.model_kwargs = {"weight_init": "glorot", "dense_eval": False, "fc_window": 2,
                    "fc_features": (fc, fc), "width_multiplier": width_multiplier}
  c.lr_schedule = "cosine"
  c.lr_decay_epochs = ()
  c.warmup_epochs = 0.0
  c.eval_protocol = "center"
  return c


def _zfnet_recipe():
  from configs import zfnet
  return zfnet.recipe()
