"""Held-out evaluation of a candidate generator (or a baseline) on validation and test."""
from tfrec.evaluation.next_watch import evaluate_next_watch
from tfrec.evaluation.true_affinity import recall_of_true_top_k

SPLITS = ("validation", "test")


def evaluate_candidates(score, examples, corpus_ids, ks=(10, 50, 100), world=None,
                        splits=SPLITS):
    """Next-watch metrics per split; on a simulated world also recall of the true top-K.

    Args:
      score: callable(queries, start, end) -> [end - start, N] scores of queries[start:end]
        against `corpus_ids`.
      examples: CandidateExamples (its validation and test query sets are used).
      world: the simulator World behind the events, or None.
    Returns:
      {split: {recall@k..., ndcg@10, map@100, [true_recall@k...], queries}}.
    """
    result = {}
    for split in splits:
        queries = getattr(examples, split)
        result[split] = evaluate_next_watch(lambda s, e: score(queries, s, e), queries,
                                            corpus_ids, ks=ks)
    if world is not None:
        for split, truth in true_recall(score, examples, corpus_ids, world, ks, splits).items():
            result[split].update(truth)
    return result


def true_recall(score, examples, corpus_ids, world, ks=(10, 50, 100), splits=SPLITS):
    """{split: {true_recall@k..., queries}}: recall of the true top-K by affinity per split."""
    result = {}
    for split in splits:
        queries = getattr(examples, split)
        result[split] = recall_of_true_top_k(lambda s, e: score(queries, s, e), queries,
                                             corpus_ids, world, ks=ks)
    return result
