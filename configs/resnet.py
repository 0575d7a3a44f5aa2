"""ResNet on ImageNet: the depth (and the plain / option-A variants) picked by the config
string.

  python -m cnn_jax.main --config=configs/resnet.py:resnet50 --workdir=workdirs/resnet50
  python -m cnn_jax.main --config=configs/resnet.py:plain34      # degradation study
  python -m cnn_jax.main --config=configs/resnet.py:resnet18 --config.dataset=fashion_mnist \\
      --config.image_size=28 --config.model_kwargs.stem=small   # a CPU smoke run

Smoke run (any machine): `python -m cnn_jax.main --config=configs/resnet.py:resnet50,smoke`
(20 steps of batch 16 on Fashion-MNIST, the 28 px images resized to 224; see
configs/common.py smoke). Flags combine: `:resnet50,paper,smoke`.

Recipe: the common modern reproduction (TF TPU / flax ImageNet example): SGD Nesterov
momentum 0.9, batch 1024 with learning rate 0.1 x batch / 256 (the linear scaling rule of
Goyal et al. 2017), 5 warm-up epochs, cosine to 90 epochs, weight decay 1e-4 on all
weights, Inception-style random-resized crop + flip, evaluation on the 224 centre crop of
the image resized to 256. The paper's own schedule (0.1, /10 on plateau, ~120 epochs, batch
256) is `:resnet50,paper`.

Paper (He et al. 2015, 10-crop top-1): ResNet-18/34/50/101/152 = 72.1 / 75.5 / 77.1 /
78.2 / 78.6 (Table 3/4; 18 from the later torch reproduction); single centre crop with this
recipe: ~76-77% for ResNet-50 v1.5 (flax example: 76.3% at 90 epochs). Time: ResNet-50,
90 epochs on a v3-32 TPU slice ~ 3 hours; not runnable on a CPU.
"""

from configs import common, default

VARIANTS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "plain18",
            "plain34", "resnet18_option_a", "resnet34_option_a")


def get_config(arg: str = "resnet50"):
  args = common.parse_arg(arg, variants=VARIANTS, default_variant="resnet50",
                          family="ResNet", paper=False, smoke=False)
  c = recipe(args.variant, paper=args.paper)
  return common.smoke(c) if args.smoke else c


def recipe(name: str, paper: bool = False):
  """The ImageNet config of variant `name`; `paper`: He et al.'s own schedule."""
  c = default.get_config()
  c.model_kwargs = {}
  if name.endswith("_option_a"):  # the paper's zero-padded identity shortcuts (Table 1)
    name = name[: -len("_option_a")]
    c.model_kwargs = {"shortcut": "zero_pad"}
  c.model = name
  c.dataset = "imagenet2012"
  c.image_size = 224
  c.augment = "inception"
  c.batch_size = 1024
  c.eval_batch_size = 1000
  c.shuffle_buffer = 16_384
  c.num_epochs = 90.0
  c.optimizer = "nesterov"
  c.momentum = 0.9
  c.learning_rate = 0.1 * c.batch_size / 256
  c.lr_schedule = "cosine"
  c.warmup_epochs = 5.0
  c.weight_decay = 1e-4
  c.dtype = "bfloat16"
  c.log_every_steps = 100
  c.checkpoint_every_steps = 5000
  if paper:  # Section 3.4: batch 256, lr 0.1 divided by 10 at plateaus.
    c.batch_size, c.learning_rate = 256, 0.1
    c.optimizer, c.lr_schedule = "sgd", "step"
    c.lr_decay_epochs, c.lr_decay_factor = (30, 60, 90), 0.1
    c.warmup_epochs, c.num_epochs = 0.0, 120.0
    c.augment = "resnet_scale"
  return c


def cpu_study(model: str, steps: int, width: int = 8):
  """A CIFAR ResNet (He et al. 2015 Section 4.2) at the CPU scale of the studies in
  experiments/ (resnet_degradation.py, resnet_shortcuts.py): Fashion-MNIST at 28 px, no
  augmentation, `steps` steps of batch 128, base width `width` (the paper's 16 halved by
  default), and the paper's CIFAR optimiser (SGD momentum 0.9, learning rate 0.1, weight
  decay 1e-4) with a cosine decay instead of its /10 at 32k and 48k steps."""
  c = common.cpu_study(recipe("resnet18"), steps=steps, batch_size=128, evals=2,
                       log_every=20)
  c.model = model
  c.model_kwargs = {"width": width}
  c.optimizer = "sgd"
  c.momentum = 0.9
  c.learning_rate = 0.1
  c.lr_schedule = "cosine"
  c.warmup_epochs = 0.0
  c.weight_decay = 1e-4
  c.label_smoothing = 0.0
  c.dtype = "float32"
  return c
