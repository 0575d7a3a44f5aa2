"""Studies: an experiment file's cells x seeds trained by the package's own trainer, then
a report with a computed verdict. Run with `python -m cnn_jax.sweep` (see runner.py)."""
