"""The one rule that turns a study's numbers into a verdict on its claim.

A claim compares a `variant` with a `baseline` on one metric and expects the variant to
be `better`, `worse`, or of `no_gain` (not better by more than `margin`). The rule looks at
the improvement of the variant over the baseline (baseline minus variant for metrics
where lower is better: errors, losses, steps) and its interval of plus and minus twice the
standard error of the difference of two means over seeds,
`se = sqrt(s_v^2 / n_v + s_b^2 / n_b)` (sample standard deviations):

  better:  reproduced if the whole interval is above `margin` (default 0), not reproduced
           if it is entirely below `margin`, inconclusive if it contains `margin`;
  worse:   the same with the sign of the improvement flipped;
  no_gain: reproduced if the whole interval is at or below `margin`, not reproduced if it
           is entirely above it, inconclusive otherwise.

Fewer than two finished seeds on either side leave no standard error: inconclusive.
A study with several claims is reproduced when every claim is, not reproduced when any
claim is not, and inconclusive otherwise.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
EXPECTATIONS = ("better", "worse", "no_gain")
Z = 2.0  # half-width of the interval, in standard errors


@dataclasses.dataclass(frozen=True)
class Claim:
  """`variant` is expected to be `expect` than `baseline` on `metric`."""
  metric: str
  variant: str
  baseline: str
  expect: str
  margin: float = 0.0
  text: str = ""  # the paper's statement, for the report

  def __post_init__(self):
    if self.expect not in EXPECTATIONS:
      raise ValueError(f"claim expect={self.expect!r}; choose one of "
                       f"{', '.join(EXPECTATIONS)}")
    if self.margin < 0:
      raise ValueError(f"claim margin={self.margin} must be >= 0")


@dataclasses.dataclass(frozen=True)
class Outcome:
  claim: Claim
  verdict: str
  improvement: float       # of the variant over the baseline; > 0: variant better
  half_width: float        # Z standard errors (nan with fewer than 2 seeds a side)
  n_variant: int
  n_baseline: int

  def describe(self) -> str:
    c = self.claim
    if math.isnan(self.half_width):
      numbers = f"n = {self.n_variant} / {self.n_baseline} seeds: no standard error"
    else:
      numbers = (f"improvement {self.improvement:+.4f} ± {self.half_width:.4f} "
                 f"(±{Z:g} SE, n = {self.n_variant} / {self.n_baseline})")
    relation = {"better": "better than", "worse": "worse than",
                "no_gain": "no better than"}[c.expect]
    margin = ""
    if c.margin:
      margin = (f" (margin {c.margin:g})" if c.expect == "no_gain" else
                f" by more than {c.margin:g}")
    return (f"{c.variant} {relation} {c.baseline} on {c.metric}{margin}: {numbers} -> "
            f"{self.verdict}")


def _mean_var(values: Sequence[float]) -> tuple[float, float]:
  n = len(values)
  mean = sum(values) / n
  var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else float("nan")
  return mean, var


def judge(claim: Claim, variant: Sequence[float], baseline: Sequence[float],
          lower_is_better: bool = True) -> Outcome:
  """The verdict on `claim` from the per-seed values of the metric on each side."""
  n_v, n_b = len(variant), len(baseline)
  if n_v == 0 or n_b == 0:
    return Outcome(claim, INCONCLUSIVE, float("nan"), float("nan"), n_v, n_b)
  (m_v, var_v), (m_b, var_b) = _mean_var(variant), _mean_var(baseline)
  improvement = (m_b - m_v) if lower_is_better else (m_v - m_b)
  if n_v < 2 or n_b < 2:
    return Outcome(claim, INCONCLUSIVE, improvement, float("nan"), n_v, n_b)
  half = Z * math.sqrt(var_v / n_v + var_b / n_b)
  lo, hi = improvement - half, improvement + half
  if claim.expect == "worse":
    lo, hi = -hi, -lo
  if claim.expect in ("better", "worse"):
    verdict = (REPRODUCED if lo > claim.margin else
               NOT_REPRODUCED if hi < claim.margin else INCONCLUSIVE)
  else:  # no_gain
    verdict = (REPRODUCED if hi <= claim.margin else
               NOT_REPRODUCED if lo > claim.margin else INCONCLUSIVE)
  return Outcome(claim, verdict, improvement, half, n_v, n_b)


def overall(outcomes: Sequence[Outcome]) -> str | None:
  """The study's verdict from its claims' verdicts (None: the study states no claim)."""
  if not outcomes:
    return None
  verdicts = {o.verdict for o in outcomes}
  if NOT_REPRODUCED in verdicts:
    return NOT_REPRODUCED
  return INCONCLUSIVE if INCONCLUSIVE in verdicts else REPRODUCED
