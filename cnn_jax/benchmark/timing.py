"""Timing shared by every side: the same warm-up, per-step clock and median."""

from __future__ import annotations

import resource
import statistics
import sys
import time
from typing import Callable


def time_steps(step: Callable[[], None], steps: int, warmup: int) -> list[float]:
  """Seconds of each of `steps` calls of `step` (which must wait for its own result),
  after `warmup` untimed calls."""
  for _ in range(warmup):
    step()
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
  return times


def summary(times: list[float], batch_size: int) -> dict:
  """images_per_second from the median step, and the step times themselves."""
  median = statistics.median(times)
  return {"images_per_second": batch_size / median, "step_ms": median * 1e3,
          "step_ms_all": [round(t * 1e3, 3) for t in times]}


def process_max_rss() -> int:
  """Peak resident memory of this process in bytes (Linux reports KiB, macOS bytes)."""
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return int(rss if sys.platform == "darwin" else rss * 1024)
