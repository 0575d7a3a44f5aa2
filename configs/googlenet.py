"""GoogLeNet on ImageNet (Szegedy et al. 2014, "Going Deeper with Convolutions").

  python -m cnn_jax.main --config=configs/googlenet.py --workdir=workdirs/googlenet
  python -m cnn_jax.main --config=configs/googlenet.py:googlenet_torchvision \
      --workdir=workdirs/googlenet_torchvision

Smoke run (any machine): `python -m cnn_jax.main --config=configs/googlenet.py:googlenet,smoke`
(20 steps of batch 16 on Fashion-MNIST, the 28 px images resized to 224; see
configs/common.py smoke).

The argument picks the model: googlenet (default; the paper's net with LRN and conv
biases, no BN) or googlenet_torchvision (torchvision's BN layout). Recipe (Section 6):
asynchronous SGD with momentum 0.9, the learning rate decreased by 4% every 8 epochs
(x0.96 every 8 epochs), Polyak averaging for the final model (ema_decay 0.9999, the
moving-average decay of the authors' later TF Inception code). Section 5: the two
auxiliary classifiers' losses are added with weight 0.3 (they sow into 'aux_logits'; the
model's aux_logits=True is the default), their dropout is 0.7 and the main dropout 0.4
(torchvision: 0.2). Augmentation: random crops of 8-100% of the area with aspect ratio
3/4-4/3 and photometric distortions ('inception'). The paper states neither the batch,
the base learning rate, the weight decay nor the length: batch 256, learning rate 0.01,
weight decay 2e-4 and 250 epochs are this config's choices.

Reported: googlenet top-5 89.9 (10.07% error, one model, one crop; Table 3);
googlenet_torchvision top-1 69.8 / top-5 89.5 (torchvision's weights).
Not run end-to-end here (no ImageNet on this machine).
"""

from configs import common, default

VARIANTS = ("googlenet", "googlenet_torchvision")


def get_config(arg: str = "googlenet"):
  args = common.parse_arg(arg, variants=VARIANTS, default_variant="googlenet",
                          family="GoogLeNet", smoke=False)
  c = recipe(args.variant)
  return common.smoke(c) if args.smoke else c


def recipe(name: str):
  """The ImageNet config of variant `name`: the recipe in this module's docstring."""
  c = default.get_config()
  c.model = name
  c.model_kwargs = {"aux_logits": True}
  c.dataset = "imagenet2012"
  c.image_size = 224
  c.augment = "inception"
  c.batch_size = 256
  c.eval_batch_size = 1000
  c.num_epochs = 250.0
  c.optimizer = "sgd"
  c.momentum = 0.9
  c.learning_rate = 0.01
  c.lr_schedule = "exponential"
  c.lr_decay_factor = 0.96       # "decreasing the learning rate by 4% every 8 epochs"
  c.lr_decay_every_epochs = 8.0
  c.weight_decay = 2e-4
  c.label_smoothing = 0.0
  c.aux_loss_weight = 0.3        # Section 5
  c.ema_decay = 0.9999           # Polyak averaging (Section 6)
  return c


def cpu_study(steps: int, width_multiplier: float = 0.25, image_size: int = 64,
              learning_rate: float = 0.01):
  """GoogLeNet at the CPU scale of the studies in experiments/ (googlenet_gap.py).

  Reductions, forced by 2 CPU cores: Fashion-MNIST resized from 28 to `image_size` px
  (64: the total stride of 32 leaves a 2x2 last map, so an FC head differs from global
  average pooling); every conv width x`width_multiplier` (model_kwargs; 0.25: 3a's
  64/96/128/16/32/32 become 16/24/32/4/8/8, the last map 256 wide instead of 1024);
  batch 128 instead of 256; `steps` steps with a cosine decay instead of 250 epochs of
  x0.96 every 8 epochs; no augmentation; no Polyak averaging (a 0.9999 average of a few
  hundred steps is still the initialisation). Kept: the paper's net (no BN, LRN, true
  5x5 branches), both auxiliary classifiers with loss weight 0.3, dropout 0.4 / 0.7, SGD
  momentum 0.9, weight decay 2e-4.
  """
  c = common.cpu_study(recipe("googlenet"), steps=steps, batch_size=128, evals=2,
                       log_every=20, image_size=image_size)
  c.model_kwargs = {"aux_logits": True, "width_multiplier": width_multiplier}
  c.learning_rate = learning_rate
  c.lr_schedule = "cosine"
  c.warmup_epochs = 0.0
  c.ema_decay = 0.0
  return c
