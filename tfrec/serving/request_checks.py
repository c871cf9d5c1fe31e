"""In-graph checks of a serving request's raw inputs, with errors that name the input.

Every servable (user_tower, retrieval_brute_force, retrieval_scann, ranker) runs its request
through `checked_request` first. A bad request fails with INVALID_ARGUMENT (in Python
`tf.errors.InvalidArgumentError`) and one of these messages, checked in this order:

  <name> must have rank 2 ([batch, 50]), got rank 1
  <name> must have shape [batch, 50], got shape [2 49]
  <name> has batch size 3 but <first input> has 2
  <name> must be finite (no NaN or inf), got 1 non-finite of 3 values   (float inputs)
  <name> has 1200 ids, more than the 1000 a request may carry        (inputs of any width)

Finite values outside the training range are answered, not rejected:
  example_age (user tower)  clamped to [0, the largest example age of training]: the tower only
                            saw ages in that range ([age, age^2] scaled by that maximum), 0 being
                            the end of the training window, as at serving; -1e30 answers as 0,
                            1e30 as the maximum.
  ranker indicators (0/1)   clamped to [0, 1].
  ranker continuous inputs  not clamped here: their EmpiricalCDF already maps anything below
                            (above) the training range to 0 (1), so -1e30 and 1e30 answer as any
                            value just beyond the smallest (largest) training value.

Why the signatures declare inputs of unknown shape (`relaxed_signature`): a TensorSpec of known
rank, even [None, None], makes the placeholder's static rank known, so rank checks resolve at
trace time and a wrong-rank request fails later inside other ops ("Rank of input (2) must be no
greater...", "ConcatOp : Dimension 0..."); `tf.ensure_shape` is no remedy either, as Grappler
evaluates it with the request's real shapes before the asserts run. So the SignatureDef says
"any shape", the checks run first (control dependencies), and the checked tensors get their
declared static shapes with `set_shape` (no op) for the model code. The manifest's "inputs" keep
the declared shapes.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tfrec.tf_keras2 import tf

# TensorFlow ships no type information: tensors, specs and shapes are Any to the checker.
Tensor = Any
Specs = Mapping[str, Any]


def relaxed_signature(specs: Specs) -> dict[str, Any]:
    """{name: TensorSpec of unknown shape, same dtype and name}: every request reaches the checks.

    Args:
      specs: {name: tf.TensorSpec} the declared inputs ([None, ...], batch first).
    """
    return {name: tf.TensorSpec(None, spec.dtype, name=spec.name or name)
            for name, spec in specs.items()}


def describe_shape(shape: Any) -> str:
    """"[batch, 50]" for TensorShape [None, 50]; unknown trailing dimensions print as n."""
    dims = ["n" if d is None else str(d) for d in shape.as_list()[1:]]
    return "[" + ", ".join(["batch", *dims]) + "]"


def _assert(condition: Tensor, template: str, *values: Tensor) -> Tensor:
    """An Assert whose message is `template` with `values` formatted in ("{}" placeholders)."""
    message = tf.strings.format(template, values) if values else tf.constant(template)
    return tf.debugging.Assert(condition, [message])


def _rank_checks(features: Mapping[str, Tensor], specs: Specs) -> list[Tensor]:
    return [_assert(tf.equal(tf.rank(features[n]), s.shape.rank),
                    f"{n} must have rank {s.shape.rank} ({describe_shape(s.shape)}), got rank {{}}",
                    tf.rank(features[n]))
            for n, s in specs.items()]


def _trailing_dimension_checks(features: Mapping[str, Tensor], specs: Specs) -> list[Tensor]:
    checks = []
    for name, spec in specs.items():
        known = [(i, d) for i, d in enumerate(spec.shape.as_list()) if i and d is not None]
        if known:
            shape = tf.shape(features[name])
            checks.append(_assert(tf.reduce_all([tf.equal(shape[i], d) for i, d in known]),
                                  f"{name} must have shape {describe_shape(spec.shape)}, "
                                  "got shape {}", shape))
    return checks


def _batch_checks(features: Mapping[str, Tensor], specs: Specs) -> list[Tensor]:
    first, *others = list(specs)
    batch = tf.shape(features[first])[0]
    return [_assert(tf.equal(tf.shape(features[n])[0], batch),
                    f"{n} has batch size {{}} but {first} has {{}}",
                    tf.shape(features[n])[0], batch)
            for n in others]


def _finite_checks(features: Mapping[str, Tensor], specs: Specs) -> list[Tensor]:
    checks = []
    for name, spec in specs.items():
        if spec.dtype.is_floating:
            bad = tf.logical_not(tf.math.is_finite(features[name]))
            checks.append(_assert(tf.logical_not(tf.reduce_any(bad)),
                                  f"{name} must be finite (no NaN or inf), got {{}} non-finite "
                                  "of {} values", tf.reduce_sum(tf.cast(bad, tf.int32)),
                                  tf.size(features[name])))
    return checks


def _width_checks(features: Mapping[str, Tensor], max_widths: Mapping[str, int]) -> list[Tensor]:
    return [_assert(tf.shape(features[n])[1] <= width,
                    f"{n} has {{}} ids, more than the {width} a request may carry",
                    tf.shape(features[n])[1])
            for n, width in max_widths.items()]


# Each stage assumes the ones before it passed (e.g. shapes are compared only at the right rank).
Stage = Callable[[Mapping[str, Tensor], Specs], list[Tensor]]
STAGES: tuple[Stage, ...] = (_rank_checks, _trailing_dimension_checks, _batch_checks,
                             _finite_checks)


def checked_request(features: Mapping[str, Tensor], specs: Specs,
                    clip: Mapping[str, tuple[float, float]] | None = None,
                    max_widths: Mapping[str, int] | None = None) -> dict[str, Tensor]:
    """The request's inputs after the checks (module docstring), with static shapes, clamped.

    Call inside the serving tf.function, on the tensors of a `relaxed_signature`.

    Args:
      features: {name: tensor of any shape}, at least the names of `specs` (others are ignored).
      specs: {name: tf.TensorSpec} declared shape [None, ...] (batch first) and dtype; the batch
        sizes are compared with the first one's.
      clip: {name: (low, high)} float inputs clamped into [low, high] after the checks.
      max_widths: {name: most columns} for rank-2 inputs declared of any width.
    Returns:
      {name: tensor} for each name of `specs`: the same values (clamped where asked), shapes set
      to the declared ones; nothing downstream runs before every check passed.
    Raises (when run):
      tf.errors.InvalidArgumentError naming the first input found wrong.
    """
    features = {name: features[name] for name in specs}
    checks: list[Tensor] = []
    stages = STAGES
    if max_widths:
        widths = max_widths
        stages = STAGES + ((lambda f, _: _width_checks(f, widths)),)
    for stage in stages:
        with tf.control_dependencies(checks):
            checks = checks + stage(features, specs)
    with tf.control_dependencies(checks):
        out = {name: tf.identity(value) for name, value in features.items()}
    for name, value in out.items():
        value.set_shape(specs[name].shape)
    for name, (low, high) in (clip or {}).items():
        out[name] = tf.clip_by_value(out[name], tf.cast(low, out[name].dtype),
                                     tf.cast(high, out[name].dtype))
    return out
