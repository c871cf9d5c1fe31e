"""Calibrating the ranker's served logit on validation impressions (Platt scaling).

A ranker picked by validation loss after a pass or two over heavy-tailed watch-time weights is
over-confident: its largest exp(logit) overshoot (docs/DESIGN_NOTES.md, "Calibration of the
ranker"). Two numbers fitted on validation, served logit = scale * logit + shift, with
scale > 0, fix that without changing the order of any page (Platt 1999; "temperature scaling",
Guo et al. 2017). They minimise the ranker's own training objective, which is a proper scoring
rule for the odds, so no ground truth is used.

Every objective of the ranker has the form, per impression with logit z,
  A softplus(-z) + B softplus(z)
with a positive weight A and a negative weight B (`objective_weights`): the paper's weighted LR
has A = T (watch time) and B = 0 when clicked, A = 0 and B = 1 when not; with every impression a
negative, A = T when clicked (else 0) and B = 1; the click-trained LR has A = clicked,
B = 1 - clicked.
"""
import numpy as np
from numpy.typing import ArrayLike


def objective_weights(clicked: ArrayLike, watch_time: ArrayLike, weighted: bool = True,
                      negatives: str = "not_clicked") -> tuple[np.ndarray, np.ndarray]:
    """(A, B): [n] positive and negative weights of the objective (module docstring).

    Args:
      clicked: [n] 0/1; watch_time: [n] seconds (only clicked rows matter).
      weighted: weight positives by watch time (False: the click-trained LR).
      negatives: not_clicked (the paper) | all_impressions (see tfrec.losses.weighted_logistic).
    """
    clicked = np.asarray(clicked, np.float64)
    if not weighted:
        return clicked, 1.0 - clicked
    target = clicked * np.asarray(watch_time, np.float64)
    return target, (np.ones_like(clicked) if negatives == "all_impressions" else 1.0 - clicked)


def objective(logits: ArrayLike, positive_weight: np.ndarray,
              negative_weight: np.ndarray) -> float:
    """Mean of A softplus(-z) + B softplus(z) over impressions (float)."""
    z = np.asarray(logits, np.float64)
    return float(np.mean(positive_weight * np.logaddexp(0.0, -z)
                         + negative_weight * np.logaddexp(0.0, z)))


def fit_logit_calibration(logits: ArrayLike, positive_weight: ArrayLike,
                          negative_weight: ArrayLike, iterations: int = 100) -> tuple[float, float]:
    """(scale, shift) minimising objective(scale * z + shift): Newton's method with backtracking.

    The objective is convex in (scale, shift) (softplus of a linear function), so Newton converges
    in a few steps. The scale is kept > 0: calibration must not reverse the ranking.

    Args:
      logits: [n] the served logits on validation.
      positive_weight, negative_weight: [n] from `objective_weights`.
    Raises:
      ValueError: fewer than two distinct logits, or no positive or no negative weight.
    """
    z = np.asarray(logits, np.float64)
    a_w, b_w = np.asarray(positive_weight, np.float64), np.asarray(negative_weight, np.float64)
    if len(np.unique(z)) < 2 or a_w.sum() <= 0 or b_w.sum() <= 0:
        raise ValueError("calibration needs two distinct logits and both positive and negative "
                         "weight")
    design = np.stack([z, np.ones_like(z)], axis=1)  # [n, 2]

    def loss(theta: np.ndarray) -> float:
        return objective(design @ theta, a_w, b_w)

    theta = np.array([1.0, 0.0])
    current = loss(theta)
    for _ in range(iterations):
        y = design @ theta
        sig = 1.0 / (1.0 + np.exp(-y))
        grad_z = -a_w * (1.0 - sig) + b_w * sig
        hess_z = (a_w + b_w) * sig * (1.0 - sig)
        grad = design.T @ grad_z / len(z)
        hess = (design * hess_z[:, None]).T @ design / len(z) + 1e-12 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        size = 1.0
        while size > 1e-6:
            candidate = theta - size * step
            if candidate[0] > 0 and loss(candidate) <= current:
                break
            size /= 2
        else:
            break
        new = loss(candidate)
        theta, done = candidate, current - new < 1e-12 * max(1.0, abs(current))
        current = new
        if done:
            break
    return float(theta[0]), float(theta[1])
