"""Calibration of AI verifier scores against human verdicts, and the thresholds for auto-decisions.

A verifier (MV or EV) gives a score per item, e.g. the softmax P(accept). Humans give verdicts on a
sample of the same items (1 = accept / exhaustive, 0 = reject / not exhaustive). From the two:

* a :class:`Calibrator` maps a raw score to a probability that a human would accept: isotonic
  regression (pool-adjacent-violators, monotone, no shape assumed) or Platt scaling (a logistic
  curve ``sigmoid(a·score + b)`` fitted by Newton's method) — :mod:`.calibrators`;
* :func:`choose_threshold` picks the lowest score ``t`` whose set ``{score ≥ t}`` is precise enough
  *with confidence*: the lower end of the 95% Wilson score interval (:mod:`.intervals`) of its
  precision must reach the target, so a handful of lucky verdicts never opens the gate;
  :func:`choose_reject_threshold` is the mirror image for auto-rejection (``{score ≤ t}``, precision
  of predicting the negative) — :mod:`.thresholds`;
* :func:`calibrate_task` does both for one (verifier version, task kind) and says, when there are
  too few verdicts, how many more a human must give (:func:`needed_for_target`) — :mod:`.task`;
* :func:`calibrate_pairs` calibrates the exhaustivity verifier's two scopes under one budget for
  the positive pairs — :mod:`.pairs` (the loss it bounds: :mod:`.pair_loss`).

Everything here is pure and uses numpy only: no database, no I/O. Every result serialises to
plain JSON (``to_dict`` / ``from_dict``) so it can be stored beside the model version.
"""

from engine.domain.calibration.calibrators import (
    ISOTONIC,
    METHODS,
    PLATT,
    Calibrator,
    fit_calibrator,
    fit_isotonic,
    fit_platt,
)
from engine.domain.calibration.intervals import (
    Z_95,
    clopper_pearson_upper,
    min_sample_size,
    needed_for_target,
    wilson_interval,
)
from engine.domain.calibration.pairs import PairCalibration, calibrate_pairs
from engine.domain.calibration.task import CalibrationResult, calibrate_task
from engine.domain.calibration.thresholds import (
    ACCEPT_SIDE,
    DEFAULT_MIN_SUPPORT,
    REJECT_SIDE,
    ThresholdChoice,
    choose_reject_threshold,
    choose_threshold,
    expected_final_precision,
    final_precision_curve,
)

__all__ = [
    "ACCEPT_SIDE", "DEFAULT_MIN_SUPPORT", "ISOTONIC", "METHODS", "PLATT", "REJECT_SIDE", "Z_95",
    "CalibrationResult", "Calibrator", "PairCalibration", "ThresholdChoice",
    "calibrate_pairs", "calibrate_task", "choose_reject_threshold", "choose_threshold", "clopper_pearson_upper",
    "expected_final_precision", "final_precision_curve", "fit_calibrator", "fit_isotonic", "fit_platt",
    "min_sample_size", "needed_for_target", "wilson_interval",
]
