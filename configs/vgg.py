"""VGG configurations A, A-LRN, B, C, D, E (Simonyan & Zisserman 2014, Table 1) on ImageNet.

  python -m cnn_jax.main --config=configs/vgg.py:vgg16 --workdir=workdirs/vgg16
  python -m cnn_jax.main --config=configs/vgg.py:vgg11_lrn --workdir=workdirs/vgg11_lrn

The argument picks the model: vgg11 (A, default), vgg11_lrn (A-LRN), vgg13 (B),
vgg16_conv1 (C), vgg16 (D), vgg19 (E), or a BatchNorm variant vgg11_bn .. vgg19_bn.
Smoke run (any machine): `python -m cnn_jax.main --config=configs/vgg.py:vgg11,smoke`
(20 steps of batch 16 on Fashion-MNIST, the 28 px images resized to 224; see
configs/common.py smoke).

Recipe (Section 3.1): SGD, batch 256, momentum 0.9, weight decay 5e-4 (the 'l2' mode),
dropout 0.5 on fc6/fc7 (model default), learning rate 1e-2 divided by 10 when the
validation accuracy stopped improving, three times, stopped after 370K iterations (74
epochs); the epochs 25/50/65 here are a fixed stand-in for the plateaus. Initialisation:
A from N(0, 1e-2) with zero biases (weight_init='paper'); B-E started from A's first
four convs and three FC layers, or, as the footnote found equivalent, from Glorot
initialisation (weight_init='glorot', used here; start from A with --config.init_from).
Augmentation: random 224 crop of the isotropically rescaled image, flip, AlexNet's RGB
colour shift; training scale S fixed at 256 or 384, or jittered in [256, 512]
('vgg_scale_jitter', used here: Table 3's best for C-E; A, A-LRN and B were trained at
S=256 only). Evaluation (Section 3.2) is dense: the FC layers run as convolutions over the
whole image rescaled to Q and its flip, class scores averaged (model_kwargs.dense_eval,
set here; cnn_jax/data/eval_protocols.py 'dense').
Reported top-1 (Table 3, one net, dense evaluation at Q = S = 256): A 70.4, A-LRN 70.3,
B 71.3, C 71.9, D 73.0, E 72.7.

The BatchNorm variants are torchvision's; they use its reference recipe with the default
learning rate 0.1 (torchvision top-1: vgg11_bn 70.4, vgg13_bn 71.6, vgg16_bn 73.4,
vgg19_bn 74.2).

Not run end-to-end here (no ImageNet on this machine).
"""

from configs import alexnet, common, default

VARIANTS = ("vgg11", "vgg11_lrn", "vgg13", "vgg16_conv1", "vgg16", "vgg19",
            "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")


def get_config(arg: str = "vgg11"):
  args = common.parse_arg(arg, variants=VARIANTS, default_variant="vgg11",
                          family="VGG", smoke=False)
  c = recipe(args.variant)
  return common.smoke(c) if args.smoke else c


def recipe(name: str):
  """The ImageNet config of variant `name`: the recipe in this module's docstring."""
  c = default.get_config()
  c.model = name
  c.dataset = "imagenet2012"
  c.image_size = 224
  c.eval_batch_size = 1000
  c.label_smoothing = 0.0
  if name.endswith("_bn"):
    c.model_kwargs = {"weight_init": "he", "dense_eval": True}
    alexnet.torchvision_recipe(c)
    c.learning_rate = 0.1  # torchvision's default: these include BatchNorm
    return c
  # Section 3.1: net A from N(0, 0.01); the deeper nets from Glorot (footnote).
  init = "paper" if name in ("vgg11", "vgg11_lrn") else "glorot"
  c.model_kwargs = {"weight_init": init, "dense_eval": True}
  c.augment = "vgg_scale_jitter"
  c.batch_size = 256
  c.num_epochs = 74.0
  c.optimizer = "sgd"
  c.momentum = 0.9
  c.learning_rate = 0.01
  c.lr_schedule = "step"
  c.lr_decay_epochs = (25, 50, 65)
  c.lr_decay_factor = 0.1
  c.weight_decay = 5e-4
  c.weight_decay_mode = "l2"
  c.eval_protocol, c.eval_scales = "dense", (256, 384, 512)  # Table 4: multi-scale Q
  return c


def cpu_study(steps: int, width_multiplier: float = 0.25, fc: int = 256):
  """VGG at the CPU scale of the studies in experiments/ (vgg_lrn.py, vgg_depth.py).

  Reductions, forced by 2 CPU cores: Fashion-MNIST resized from 28 to 32 px (five 2x2
  pools leave 1x1, so fc6 covers a 1x1 map: fc_window=1, no dense evaluation); conv widths
  x`width_multiplier` (0.25: 16-32-64-128-128 instead of 64-128-256-512-512); fc6/fc7 of
  `fc` units instead of 4096; batch 128 instead of 256; `steps` steps with a cosine decay
  instead of 74 epochs with /10 on plateaus; no augmentation; Glorot initialisation for
  every depth (the Section 3.1 footnote's alternative to pre-training from net A).
  Kept: no BatchNorm, dropout 0.5 on fc6/fc7, SGD momentum 0.9, learning rate 0.01,
  weight decay 5e-4.
  """
  c = common.cpu_study(recipe("vgg11"), steps=steps, batch_size=128, evals=2,
                       log_every=20, image_size=32)
  c.model_kwargs = {"weight_init": "glorot", "dense_eval": False, "fc_window": 1,
                    "fc_features": (fc, fc), "width_multiplier": width_multiplier}
  c.lr_schedule = "cosine"
  c.lr_decay_epochs = ()
  c.warmup_epochs = 0.0
  c.eval_scales = None
  return c


def table3(name: str):
  """Table 3's protocol for `name` on ImageNet: the recipe above with the training scale
  S fixed at 256 and dense evaluation at the single scale Q = 256 (Table 4 is the one with
  scale jitter and multi-scale Q)."""
  c = recipe(name)
  c.augment = "vgg_fixed_scale"
  c.eval_protocol, c.eval_scales = "dense", (256,)
  return c
