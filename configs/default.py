"""Every field the trainer reads, with its default. Family configs import and change a few.

Not meant to be run on its own; see configs/fashion_mnist.py for the quickstart and the
family files (configs/resnet.py, configs/vgg.py, ...) for the papers' ImageNet recipes.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # Model: a registry name (cnn_jax.models.names()) and overrides of its module fields.
  c.model = "resnet18"
  c.model_kwargs = ml_collections.ConfigDict()
  c.dtype = "float32"          # compute dtype: float32 | bfloat16 | float16
  c.shard_params = False       # FSDP-style: split large parameters over the data axis
  c.shard_params_min_size = 2**18  # only arrays with at least this many elements
  c.init_from = ""             # checkpoint dir of converted / earlier weights to start from

  # Data.
  c.dataset = "fashion_mnist"  # fashion_mnist | imagenet2012 | ...
  c.data_dir = ml_collections.config_dict.placeholder(str)  # TFDS data_dir; None: TFDS default
  c.source_dir = "/usr/share/datasets/fashion-mnist"        # raw files to build from offline
  c.manual_dir = ml_collections.config_dict.placeholder(str)  # ImageNet tars; None: TFDS's
  c.image_size = 28
  c.augment = "none"           # named training augmentation, see cnn_jax/data/augment.py
  c.randaugment_layers = 2     # RandAugment N and M (Cubuk et al. 2019)
  c.randaugment_magnitude = 10.0
  c.mixup_alpha = 0.0          # batch-level mixup / cutmix; 0: off
  c.cutmix_alpha = 0.0
  c.eval_protocol = "center"   # center (crop_fraction of the model) | flip | ten_crop | dense
  c.eval_scales = ml_collections.config_dict.placeholder(tuple)  # dense: the scales Q
  c.extra_eval_datasets = ()   # e.g. ("imagenet_v2", "imagenet2012_real") when prepared
  c.batch_size = 256           # global, over all devices and hosts
  c.eval_batch_size = 1000     # global; the last batch is padded and masked
  c.eval_max_examples = -1     # -1: every eval example; n > 0: the first n (smoke runs)
  c.train_max_examples = -1    # -1: the whole training split; n > 0: its first n
  c.shuffle_buffer = 60_000
  c.prefetch = 2

  # Length.
  c.num_epochs = 1.0
  c.num_train_steps = -1       # -1: derived from num_epochs

  # Optimiser and schedule (see cnn_jax/train/optimizers.py).
  c.optimizer = "sgd"          # sgd | nesterov | rmsprop | adam | adamw
  c.momentum = 0.9
  c.rmsprop_decay = 0.9
  c.rmsprop_eps = 1.0          # TF-style RMSProp epsilon (inside the sqrt's denominator)
  c.learning_rate = 0.1        # peak learning rate for `batch_size`
  c.lr_schedule = "cosine"     # constant | cosine | step | exponential
  c.warmup_epochs = 0.0
  c.lr_decay_epochs = ()       # step: epochs where the rate is multiplied by lr_decay_factor
  c.lr_decay_factor = 0.1      # step: factor; exponential: factor per lr_decay_every_epochs
  c.lr_decay_every_epochs = 2.0
  c.weight_decay = 0.0
  c.weight_decay_mode = "l2"   # l2 (added to the loss) | decoupled (AdamW-style)
  c.weight_decay_exclude_bn_bias = False
  c.grad_clip_norm = 0.0       # 0: off
  c.label_smoothing = 0.0
  c.aux_loss_weight = 0.0      # weight of every logit sown into 'aux_logits'
  c.ema_decay = 0.0            # parameter moving average used for evaluation; 0: off

  # Bookkeeping.
  c.seed = 0
  c.log_every_steps = 50
  c.eval_every_epochs = 1.0    # also evaluated at the end
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 2
  # JAX's persistent compilation cache in ~/.cache/cnn_jax/xla (the sweep's too): a rerun
  # or another seed of the same config does not compile again. False: cnn_jax.main leaves
  # it off (JAX's own JAX_COMPILATION_CACHE_DIR still applies).
  c.compile_cache = True
  return c
