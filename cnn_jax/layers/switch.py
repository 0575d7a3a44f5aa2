"""An on/off choice read when a function is traced: a context manager for code that
compares both sides in one process, else an environment variable for a whole run. The
CPU-only paths (depthwise.py, pointwise.py, patches.py, fence.py, pooling.py's max
pooling) each have one, and so has dense.py's order of a transition's pool and conv."""

from __future__ import annotations

import contextlib
import os


class TraceTimeSwitch:
  """On unless the innermost `use(False)` context says off, or, outside any context, the
  environment variable `env_var` is "0"."""

  def __init__(self, env_var: str):
    self.env_var = env_var
    self._choice: bool | None = None  # set by `use`; None: the environment decides

  def enabled(self) -> bool:
    if self._choice is not None:
      return self._choice
    return os.environ.get(self.env_var, "1") != "0"

  @contextlib.contextmanager
  def use(self, on: bool):
    """Within the context, functions traced take the path (True) or not (False)."""
    previous, self._choice = self._choice, bool(on)
    try:
      yield
    finally:
      self._choice = previous
