"""Throughput of the trainer's own jitted step, alone or against a peer framework.

  python -m cnn_jax.benchmark --model resnet50 --batch-size 8 --image-size 224 \
      --mode train [--dtype bfloat16] [--steps 10] [--warmup 2] \
      [--peer torchvision|keras|plain] [--plain] [--rounds 2]

prints one JSON line: `images_per_second` (the batch over the median of the timed steps
after the warm-up), `step_ms`, `compile_seconds` (trace + XLA compile of the step),
`lower_seconds` (the part of it before XLA: Python tracing and lowering to StableHLO),
`peak_memory_bytes` with `peak_memory_source` ("device": the accelerator's
`memory_stats()`; "process_max_rss": the worker process's peak resident memory on CPU),
`gflops_per_image` (XLA's cost analysis of the compiled step), `mfu` (null unless the
device's peak is in `peaks.PEAK_TFLOPS` and the dtype is bfloat16 / float16), and with
`--peer` the peer's `peer_images_per_second` and `ratio` (ours / peer, medians over the
rounds) plus each round's figures.

What is measured is the step `cnn_jax.main` runs: the config is `configs/default.py`
with the model, batch, size and dtype set (and `--set FIELD=VALUE` for any other field);
the model, `TrainState` and optimiser come from `cnn_jax.train.loop.create_model` /
`create_train_state` and the step from `cnn_jax.train.steps.jit_steps` (`--mode infer`:
its eval step), on one synthetic batch of normal noise and random labels.

Each side runs in its own fresh process (`python -m cnn_jax.benchmark --worker ...`), and
the rounds alternate which side goes first, because these machines are shared and noisy:
report ratios measured in the same run, not absolute times. `--plain` (or `--peer
plain`) leaves out the package's CPU settings: `cnn_jax.platform`'s XLA flag and malloc
settings, and the depthwise convolution's custom gradient (cnn_jax/layers/depthwise.py).

Peers (cnn_jax/benchmark/peers.py): `torchvision` (torch model of the same name,
channels_last, SGD with momentum, autocast for bfloat16; resnet50, mobilenet_v2,
efficientnet_b0, densenet121; needs torch and torchvision) and `keras` (Keras 3
applications on the JAX backend, `train_on_batch` / `predict_on_batch`).

Nothing here imports TensorFlow, TFDS, ml_collections or clu at module level, so the tool
runs on machines without them (e.g. a GPU image): without ml_collections the default
config is read into a plain attribute dict.
"""
