"""DenseNet-BC 121 / 161 / 169 / 201 / 264 on ImageNet (Huang et al. 2017, Sec. 4.2).

  python -m cnn_jax.main --config=configs/densenet.py:densenet121 \
      --workdir=workdirs/densenet121

The argument picks the variant (default densenet121). Add
`--config.model_kwargs.remat=True` to recompute each dense layer in the backward pass
(much less activation memory, about one extra forward pass of compute).
Smoke run (any machine): `python -m cnn_jax.main --config=configs/densenet.py:densenet121,smoke`
(20 steps of batch 16 on Fashion-MNIST, the 28 px images resized to 224; see
configs/common.py smoke).

Recipe (Sec. 4.2): SGD with Nesterov momentum 0.9 (no dampening), batch 256, learning
rate 0.1 divided by 10 at epochs 30 and 60, 90 epochs, weight decay 1e-4, no dropout on
ImageNet, the fb.resnet.torch augmentation (random-sized crop 8-100% with aspect 3/4-4/3,
colour jitter, lighting, flip; named 'inception' here, the same crop and colour family).
Reported single-crop top-1 (Table 3, error 25.02 / 23.80 / 22.58 / 22.15): DenseNet-121
75.0, -169 76.2, -201 77.4, -264 77.9; DenseNet-161 (k=48) is from the authors' later
release (torchvision 77.1). Not run end-to-end here (no ImageNet on this machine).
"""

from configs import common, default

VARIANTS = ("densenet121", "densenet161", "densenet169", "densenet201", "densenet264")


def get_config(arg: str = "densenet121"):
  args = common.parse_arg(arg, variants=VARIANTS, default_variant="densenet121",
                          family="DenseNet", smoke=False)
  c = recipe(args.variant)
  return common.smoke(c) if args.smoke else c


def recipe(name: str):
  """The ImageNet config of variant `name`: the recipe in this module's docstring."""
  c = default.get_config()
  c.model = name
  c.model_kwargs = {"remat": False}
  c.dataset = "imagenet2012"
  c.image_size = 224
  c.augment = "inception"
  c.batch_size = 256
  c.eval_batch_size = 1000
  c.num_epochs = 90.0
  c.optimizer = "nesterov"
  c.momentum = 0.9
  c.learning_rate = 0.1 * 256 / 256
  c.lr_schedule = "step"
  c.lr_decay_epochs = (30, 60)
  c.lr_decay_factor = 0.1
  c.weight_decay = 1e-4
  c.label_smoothing = 0.0
  return c
