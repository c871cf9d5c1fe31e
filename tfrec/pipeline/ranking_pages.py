"""The ranker's pages (ranking examples) by split, as the ranking stage trains and tests on them:
logged impressions, or pages built from the candidate generator's retrievals, scored by the
generator (or by cross-fitted fold generators) when the ranker reads cg_score."""
import typing

from tfrec.features.example_set import ExampleSet
from tfrec.stages import StageContext


def ranking_splits(ctx: StageContext) -> tuple[tuple, str]:
    """(train, validation, test) ranking ExampleSets and a line saying where they came from.

    Under P3 the ranker sees only what the generator never trained on: pages inside the
    validation window (split by time again: the latest `ranking.p3_holdout_share` choose its
    epoch and Platt scaling), tested on the pages of the test window. Under P1, logged
    impressions (the simulator's) are split by time; a source without impressions (MovieLens)
    gets pages built from the candidate generator's retrievals for each next-watch example
    (`retrieved_impressions`; at most `max_train_pages` training pages, sampled).
    """
    import numpy as np

    from tfrec.features.ranking_examples import (build_ranking_examples, holdout_latest,
                                                  split_by_time)
    rk, events = ctx.config.ranking, ctx.inputs["events"]
    model, cg_examples = ctx.inputs["candidate_generation"], ctx.inputs["examples"]
    windows = cg_examples.windows
    # P1: fold generators build and score the training pages (the stage is off under P3).
    folds = ctx.inputs["cross_fitting"] if "cross_fitting" in ctx.inputs else None
    parts: typing.Any  # (train, validation, test): a tuple, or a list refilled in place (P3)
    if len(events.impressions):
        examples = build_ranking_examples(events, max_history=rk.model.max_history)
        if windows is None:
            parts = split_by_time(examples, rk.validation_fraction, rk.test_fraction)
            source = "logged impressions, split by time"
        else:
            times = np.asarray(examples["timestamp"])
            window = examples.take((times >= windows.validation_start)
                                   & (times < windows.test_start))
            parts = (*holdout_latest(window, rk.p3_holdout_share),
                     examples.take(times >= windows.test_start))
            source = "logged impressions of the P3 validation window (test: the test window)"
    else:
        ri = rk.retrieved_impressions
        if windows is None:
            queries = (cg_examples.train, cg_examples.validation, cg_examples.test)
        else:
            queries = (cg_examples.window_queries["validation_window"], None,
                       cg_examples.window_queries["test_window"])
        train = queries[0]
        if len(train) > ri.max_train_pages:
            rows = np.sort(np.random.default_rng(ri.seed).choice(len(train), ri.max_train_pages,
                                                                 replace=False))
            train = train.take(rows)
        parts = [None if q is None else _retrieved_pages(ctx, q, folds if i == 0 else None)
                 for i, q in enumerate((train, *queries[1:]))]
        if windows is not None:
            parts[:2] = holdout_latest(parts[0], rk.p3_holdout_share)
        source = (f"pages built from the candidate generator's top {ri.top_n} "
                  f"(positive: {ri.positive})" + (
                      "" if windows is None else " at every watch of the P3 validation window "
                      "(test: the test window)"))
    if folds:
        how = " and ".join(w for w, used in (("built", not len(events.impressions)),
                                             ("scored", "cg_score" in rk.model.features)) if used)
        source += (f"; training pages {how} by {len(folds)} cross-fitted generators, each "
                   "trained on the other users")
    if "cg_score" in rk.model.features:
        tower = ctx.config.candidate_generation.tower
        for i, part in enumerate(parts):
            part.columns["cg_score"] = _generator_scores(folds if i == 0 and folds else [model],
                                                         part, tower)
    return tuple(parts), source


def _generator_scores(models: list[typing.Any], part: ExampleSet,
                      tower: typing.Any) -> typing.Any:
    """[n] cg_score of each impression: with one model, its u·v; with fold models, the u·v of
    the generator that never saw the impression's user (`cross_fitting.scoring_fold`)."""
    import numpy as np

    from tfrec.features.retrieved_impressions import candidate_generation_scores
    from tfrec.models.cross_fitting import scoring_fold
    if len(models) == 1:
        return candidate_generation_scores(models[0], part, tower)
    fold = scoring_fold(part["user_id"], len(models))
    out = np.zeros(len(part), np.float32)
    for k, model in enumerate(models):
        rows = np.flatnonzero(fold == k)
        out[rows] = candidate_generation_scores(model, part.take(rows), tower)
    return out


def _retrieved_pages(ctx: StageContext, queries: ExampleSet,
                     folds: list[typing.Any] | None = None) -> ExampleSet:
    """Ranking examples of pages built from the generator's retrievals for `queries`; with fold
    generators, each user's pages from the one that never saw the user."""
    import numpy as np
    import pandas as pd

    from tfrec.features.ranking_examples import build_ranking_examples
    from tfrec.features.retrieved_impressions import retrieved_impressions
    from tfrec.models.cross_fitting import scoring_fold
    rk, events = ctx.config.ranking, ctx.inputs["events"]
    ri = rk.retrieved_impressions
    models = folds or [ctx.inputs["candidate_generation"]]
    fold = scoring_fold(queries["user_id"], len(models)) if folds else np.zeros(len(queries), int)
    impressions = pd.concat([retrieved_impressions(
        model, queries.take(np.flatnonzero(fold == k)), ctx.config.candidate_generation.tower,
        events.watches, ri.top_n, ri.negatives_per_page, seed=ri.seed + k,
        positive=ri.positive) for k, model in enumerate(models)], ignore_index=True)
    return build_ranking_examples(events, impressions, max_history=rk.model.max_history)
