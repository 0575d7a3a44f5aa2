"""End-to-end training on real Fashion-MNIST: learning, results.json, exact resume."""

import json
import os

import pytest

from conftest import tiny_fashion_config
from cnn_jax.train.loop import train_and_evaluate

RESULT_KEYS = {"model", "dataset", "steps", "top1", "top5", "loss", "wall_seconds",
               "train_images_per_second", "params_fingerprint"}


@pytest.mark.slow
def test_short_run_learns_and_writes_results(fashion_data_dir, tmp_path):
  # Evaluated with the flip protocol: each test image and its mirror, scores averaged.
  config = tiny_fashion_config(fashion_data_dir, num_train_steps=80, learning_rate=0.05,
                               eval_protocol="flip")
  results = train_and_evaluate(config, str(tmp_path))
  on_disk = json.loads((tmp_path / "results.json").read_text())
  assert RESULT_KEYS <= set(on_disk)
  assert on_disk["params_fingerprint"] == results["params_fingerprint"]
  assert len(on_disk["params_fingerprint"]) == 64
  assert on_disk["steps"] == 80 and on_disk["eval_examples"] == 10_000  # every test image
  # 10 classes: chance is 10%; 80 small steps of a tiny ResNet reach well over 60%.
  assert on_disk["top1"] > 0.6, on_disk
  assert on_disk["top5"] >= on_disk["top1"]
  assert (tmp_path / "config.json").exists()
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path))
  assert os.listdir(tmp_path / "checkpoints") and os.listdir(tmp_path / "checkpoints_best")


def test_flip_protocol_feeds_each_test_image_and_its_mirror(fashion_data_dir):
  import numpy as np

  from cnn_jax import data, models
  batches = {}
  for protocol in ("center", "flip"):
    config = tiny_fashion_config(fashion_data_dir, eval_protocol=protocol,
                                 eval_batch_size=16, eval_max_examples=16)
    pipeline = data.create_input(config, model_spec=models.spec(config.model))
    batches[protocol] = next(iter(pipeline.eval_iter()))
  center, flip = batches["center"]["image"], batches["flip"]["image"]
  assert center.shape == (16, 28, 28, 1) and flip.shape == (16, 2, 28, 28, 1)
  np.testing.assert_array_equal(flip[:, 0], center)
  np.testing.assert_array_equal(flip[:, 1], center[:, :, ::-1])
  np.testing.assert_array_equal(batches["flip"]["label"], batches["center"]["label"])


@pytest.mark.slow
def test_resume_matches_uninterrupted_run(fashion_data_dir, tmp_path):
  # Constant learning rate, so the shortened first leg runs the same schedule.
  common = dict(lr_schedule="constant", learning_rate=0.02, checkpoint_every_steps=10,
                augment="flip_crop", num_train_steps=20, eval_max_examples=500)
  full = train_and_evaluate(tiny_fashion_config(fashion_data_dir, **common),
                            str(tmp_path / "full"))
  part = tiny_fashion_config(fashion_data_dir, **{**common, "num_train_steps": 10})
  train_and_evaluate(part, str(tmp_path / "resumed"))
  resumed = train_and_evaluate(tiny_fashion_config(fashion_data_dir, **common),
                               str(tmp_path / "resumed"))
  assert resumed["steps"] == full["steps"] == 20
  assert resumed["params_fingerprint"] == full["params_fingerprint"]
