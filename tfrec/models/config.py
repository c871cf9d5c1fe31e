"""Configs of the candidate-generation model (plain dataclasses: no TensorFlow import)."""
import dataclasses
import typing


@dataclasses.dataclass(frozen=True)
class UserTowerConfig:
    """Args:
      features: which of watch_history, search_tokens, demographics, example_age to use.
      demographic_columns: the users-table columns used as demographics.
      embedding_dim: video input embedding width (= output width if embeddings are shared).
      search_buckets: hash buckets of search tokens.
      search_dim, demographic_dim: their embedding widths.
      hidden_units: the ReLU tower; its last width is d, the size of u.
      dropout: dropout after each hidden layer (training only).
      l2: L2 penalty on the tower's kernels and the input embeddings.
      max_history, max_search_tokens: input widths.
      example_age_scale: size of the example-age features [x, x^2] (x in [0, 1] over the
        training window) beside the embeddings (`tfrec.models.layers.ExampleAgeFeatures`).
    """

    features: typing.List[str] = ("watch_history", "demographics", "example_age")
    demographic_columns: typing.List[str] = ("age", "gender", "occupation")
    embedding_dim: int = 64
    search_buckets: int = 100_000
    search_dim: int = 32
    demographic_dim: int = 8
    hidden_units: typing.List[int] = (128, 64)
    dropout: float = 0.0
    l2: float = 0.0
    max_history: int = 50
    max_search_tokens: int = 64
    example_age_scale: float = 0.05


@dataclasses.dataclass(frozen=True)
class SoftmaxConfig:
    """Args:
      loss: full | sampled | in_batch | mixed (the modules of tfrec/losses/softmax/, listed by
        `tfrec.losses.registry.loss_names`).
      num_negatives: N, the negatives drawn from Q per batch (sampled and mixed).
      proposal: uniform | unigram: Q over videos (unigram uses training label counts ** alpha).
      proposal_alpha: the unigram exponent (0.75 is word2vec's choice; 1 = label frequency).
      logq_correction: subtract log expected counts (turn off only to show why it matters).
      label_probability: counts | streaming: how in-batch candidates' probability is known,
        from training label counts, or estimated from the batch stream (Yi et al. 2019); the
        modules of tfrec/losses/label_probability/.
      streaming_alpha: the streaming estimator's moving-average rate.
      use_bias: a per-video bias b_j in the softmax.
      share_embeddings: the watch-history input embeddings are the softmax weights (needs the
        tower's last width = embedding_dim).
    """

    loss: str = "sampled"
    num_negatives: int = 1024
    proposal: str = "unigram"
    proposal_alpha: float = 0.75
    logq_correction: bool = True
    label_probability: str = "counts"
    streaming_alpha: float = 0.01
    use_bias: bool = False
    share_embeddings: bool = False


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Args:
      epochs: most epochs; training stops earlier after `patience` epochs without improvement of
        `selection_metric` on validation, and the best epoch's weights are kept.
      batch_size: examples per step (the last partial batch is dropped: fixed loss scale).
      optimizer: adam | adagrad; learning_rate: its step size.
      selection_metric: a P1 metric name (map@100 is the paper's holdout MAP).
      patience: epochs without improvement before stopping.
      seed: seeds weights, shuffling and negative sampling.
    """

    epochs: int = 20
    batch_size: int = 256
    optimizer: str = "adam"
    learning_rate: float = 0.002
    selection_metric: str = "map@100"
    patience: int = 3
    seed: int = 0


RANKING_FEATURES = ("video_id", "watch_history", "language", "continuous", "cg_score")


@dataclasses.dataclass(frozen=True)
class RankingConfig:
    """The ranker (weighted logistic regression for expected watch time, `tfrec.models.ranking`).

    Args:
      features: which of video_id, watch_history, language, continuous, cg_score to use
        (continuous = the CDF-normalised counts and times with x^2 and sqrt(x), and the 0/1
        indicators; cg_score needs a `cg_score` column, see `candidate_generation_scores`).
      hidden_units: the ReLU tower, e.g. (256,), (512, 256); () = logistic regression on the
        features.
      embedding_dim: video id embedding width (impressed video and watch history share it).
      language_dim: language embedding width (user and video language share it).
      weighted: weight clicked impressions by watch time (the paper); False trains on clicks
        alone (the click-trained baseline: its exp(logit) are click odds, not watch times).
      negatives: not_clicked (the paper: the odds exp(logit) are E[T] / (1 - P)) |
        all_impressions (every impression is also a negative of weight 1: the odds are E[T]
        exactly, however often pages are clicked; see tfrec.losses.weighted_logistic).
      click_head: a second logistic head on clicks (unweighted) giving click_probability.
      negative_subsample_rate: r in (0, 1]: keep each training negative with probability r; the
        served logits are corrected by + log(r) (kept negatives weigh 1 / r instead with
        negatives = all_impressions).
      calibrate: fit served logit = scale * logit + shift on validation, minimising the training
        objective (Platt scaling; never reorders a page), see tfrec.models.ranking_calibration.
      quantiles: buckets of the empirical-CDF normalisation.
      max_history: watch history width (= the candidate generator's).
      epochs, patience: most epochs; stop after `patience` epochs without a better validation
        `selection_metric` and keep the best epoch's weights.
      selection_metric: weighted_per_user_loss (the paper's ranking metric; ties broken by the
        log loss) | weighted_logistic_loss (the training objective on all validation impressions:
        a proper scoring rule, so it also rewards calibrated watch times; less noisy).
      batch_size, optimizer (adam | adagrad), learning_rate, l2 (on kernels and embeddings).
      seed: seeds weights, shuffling and subsampling.
    """

    features: typing.List[str] = ("video_id", "watch_history", "language", "continuous",
                                  "cg_score")
    hidden_units: typing.List[int] = (256,)
    embedding_dim: int = 32
    language_dim: int = 8
    weighted: bool = True
    negatives: str = "not_clicked"
    click_head: bool = True
    negative_subsample_rate: float = 1.0
    calibrate: bool = True
    quantiles: int = 100
    max_history: int = 50
    epochs: int = 10
    patience: int = 2
    selection_metric: str = "weighted_per_user_loss"
    batch_size: int = 512
    optimizer: str = "adam"
    learning_rate: float = 0.002
    l2: float = 0.0
    seed: int = 0
