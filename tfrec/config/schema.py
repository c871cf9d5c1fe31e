"""The pipeline config's schema: one frozen pydantic model per YAML section (no TensorFlow import).

Types, choices (`Literal`) and bounds (`Field(gt=...)`) are declared on the fields; rules across
fields are `model_validator`s that raise `rule_error(key, message)`, so the message names the key
it is about. `tfrec.config.errors` turns a ValidationError into a ConfigError naming the file.
Validation is strict, as YAML's own types are: 5 is not a bool, "5" is not an int; an int is
accepted for a float (as 5.0), a YAML list for a tuple field.
"""
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, \
    model_validator
from pydantic_core import PydanticCustomError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# The ranker's default feature groups; the choices are the modules of tfrec/features/ranker/.
RANKING_FEATURES = ("video_id", "watch_history", "language", "continuous", "cg_score")


def _loss_choices() -> tuple[str, ...]:
    """softmax.loss values: the loss modules of tfrec/losses/softmax/ (the registry lists them
    without importing TensorFlow)."""
    from tfrec.losses.registry import loss_names
    return loss_names()


def _tower_feature_choices() -> tuple[str, ...]:
    """tower.features values: the feature modules of tfrec/features/tower/ (the registry lists
    them without importing TensorFlow)."""
    from tfrec.features.tower_registry import tower_feature_names
    return tower_feature_names()


def _label_probability_choices() -> tuple[str, ...]:
    """softmax.label_probability values: the modules of tfrec/losses/label_probability/."""
    from tfrec.losses.registry import label_probability_names
    return label_probability_names()


def _ranker_feature_choices() -> tuple[str, ...]:
    """ranking.model.features values: the feature-group modules of tfrec/features/ranker/ (the
    registry lists them without importing TensorFlow)."""
    from tfrec.features.ranker import ranker_feature_names
    return ranker_feature_names()


def _ranker_features_needing_generator(names: tuple[str, ...]) -> list[str]:
    """The groups among `names` whose inputs come from the candidate generator (imports their
    modules: asked only of a config with the ranker but without candidate generation)."""
    from tfrec.features.ranker import RANKER_FEATURES
    return [n for n in names if RANKER_FEATURES.get(n).needs_candidate_generator]


def _protocol_choices() -> tuple[str, ...]:
    from tfrec.features.split import PROTOCOLS
    return PROTOCOLS


def _simulator_presets() -> tuple[str, ...]:
    from tfrec.data.simulator.config import PRESETS
    return tuple(sorted(PRESETS))


def rule_error(key: str | None, message: str) -> PydanticCustomError:
    """The error a validator raises: `key` (dotted, relative to the model validated; None = the
    field being validated) and what is wrong with it, e.g. ("negatives_per_page", "must be ...")."""
    return PydanticCustomError("config_rule", "{message}", {"key": key, "message": message})


def _choice(value: str, choices: Iterable[str], key: str | None = None) -> str:
    if value not in choices:
        raise rule_error(key, f"must be one of {tuple(choices)}, got {value!r}")
    return value


def _names_in(values: tuple[str, ...], choices: Iterable[str]) -> tuple[str, ...]:
    unknown = sorted(set(values) - set(choices))
    if unknown:
        raise rule_error(None, f"has unknown {unknown}; choose from {list(choices)}")
    return values


def _folder_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise rule_error(None, f"{name!r} must be letters, digits, '_', '.', '-' (it names a "
                         "folder under runs/)")
    return name


def _tuple_from_list(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def _one_of(choices: Callable[[], tuple[str, ...]]) -> AfterValidator:
    """The validator of a str field that must be one of `choices()` (a function, so the choices
    are read when validating): `Annotated[str, _one_of(...)]`."""
    return AfterValidator(lambda value: _choice(value, choices()))


# YAML lists arrive as lists; the configs hold tuples (hashable, like the frozen models).
Names = Annotated[tuple[str, ...], BeforeValidator(_tuple_from_list)]
Widths = Annotated[tuple[Annotated[int, Field(gt=0)], ...],
                   BeforeValidator(_tuple_from_list)]
TowerFeatures = Annotated[Names, AfterValidator(lambda v: _names_in(v, _tower_feature_choices()))]
RankingFeatures = Annotated[Names,
                            AfterValidator(lambda v: _names_in(v, _ranker_feature_choices()))]


class Section(BaseModel):
    """Base of every section: unknown keys, NaN/inf and loose types are errors; read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class SimulationConfig(Section):
    """The simulated world of data.format simulator (tfrec.data.simulator).

    Args:
      preset: tiny | small | medium | large.
      seed: the world and its logs are a function of (preset, seed).
    """

    preset: Annotated[str, _one_of(_simulator_presets)] = "small"
    seed: int = 0


class DataConfig(Section):
    """Where the events come from.

    Args:
      source: dataset name; "movielens-100k" can be fetched by `tfrec data fetch`.
      format: recbole | grouplens | tfds | events (a folder of event Parquet files) | simulator.
      path: the folder to read; None fetches `source` into `cache_dir` (recbole format only).
      cache_dir: fetch cache; None = $TFREC_CACHE or ~/.cache/tfrec.
      tfds_data_dir: TFDS data_dir holding a prepared `movielens/100k-ratings` (format tfds).
      simulator: preset and seed (format simulator).
    """

    source: str = "movielens-100k"
    format: Literal["recbole", "grouplens", "tfds", "events", "simulator"] = "recbole"
    path: str | None = None
    cache_dir: str | None = None
    tfds_data_dir: str | None = None
    simulator: SimulationConfig = SimulationConfig()

    @model_validator(mode="after")
    def _format_needs_its_folder(self) -> Self:
        if self.format == "tfds" and not self.tfds_data_dir:
            raise rule_error("tfds_data_dir", "is required when data.format is tfds")
        if self.format in ("grouplens", "events") and not self.path:
            raise rule_error("path", f"is required when data.format is {self.format}")
        return self


def _beam_options(options: dict[str, str | int | float | bool]
                  ) -> dict[str, str | int | float | bool]:
    """examples.beam.options: names Beam's pipeline options know (needs the beam extra)."""
    try:
        from tfrec.features.beam_options import pipeline_option_names
    except ImportError as err:
        raise rule_error(None, "needs Apache Beam: pip install -e '.[beam]' "
                         f"({err})") from None
    unknown = sorted(set(options) - pipeline_option_names())
    if unknown:
        raise rule_error(None, f"has unknown Beam pipeline options {unknown} (e.g. "
                         "direct_num_workers, direct_running_mode, project, region, temp_location, "
                         "flink_master, parallelism)")
    if "runner" in options:
        raise rule_error(None, "must not hold 'runner': set examples.beam.runner")
    return options


class BeamConfig(Section):
    """The Apache Beam pipeline of examples.driver beam (`tfrec.features.beam_driver`).

    Args:
      runner: DirectRunner (runs here), PrismRunner, DataflowRunner, FlinkRunner, SparkRunner or
        PortableRunner (README, "Scaling out").
      options: Beam pipeline options by name (without dashes), e.g. {direct_num_workers: 2,
        direct_running_mode: multi_processing}; for Dataflow project, region, temp_location.
    """

    runner: Literal["DirectRunner", "PrismRunner", "DataflowRunner", "FlinkRunner",
                    "SparkRunner", "PortableRunner"] = "DirectRunner"
    options: Annotated[dict[str, str | int | float | bool],
                       AfterValidator(_beam_options)] = Field(default_factory=dict)


class ExampleConfig(Section):
    """How examples are built (`tfrec.features.candidate_examples`).

    Args:
      max_history: most recent watches kept as the history feature.
      max_search_queries: most recent searches whose tokens are kept.
      max_examples_per_user: cap on training examples per user; 0 means no cap.
      min_history: a training label needs at least this many earlier watches.
      seed: seeds the per-user cap sample (with the user id, so each user is independent).
      shards: 0 keeps the training examples in memory; N > 0 also writes them as N GZIP
        TFRecord shards (with a facts file) and candidate generation trains by streaming them.
      driver: "local" (one process, `tfrec.features.local_driver`) or "beam" (an Apache Beam
        pipeline writing TFRecord shards, `tfrec.features.beam_driver`); the same examples.
      beam: the Beam runner and its pipeline options (driver beam).
    """

    max_history: int = Field(50, ge=1)
    max_search_queries: int = Field(50, ge=1)
    max_examples_per_user: int = Field(100, ge=0)
    min_history: int = Field(1, ge=0)
    seed: int = 0
    shards: int = Field(0, ge=0)
    driver: Literal["local", "beam"] = "local"
    beam: BeamConfig = BeamConfig()


class EvaluationConfig(Section):
    """Held-out evaluation (docs/PROTOCOL.md).

    Args:
      ks: cut-offs for Recall@K.
      protocol: "p1" holds out each user's last two watches (P2's split on the simulator);
        "p3" is the global time split: one cut for everyone, the models evaluated (and exported)
        are trained only on watches before the validation window.
      p3_window_days: P3 windows of this many days (test = the last, validation = the one
        before); null: by quantiles of the watch timestamps, `p3_window_share` each.
      p3_window_share: share of all watches in each P3 window when p3_window_days is null.
      compare_protocol: also train a generator (the same config, not exported) and evaluate it
        and popularity under this other protocol, so one report shows both; null: off.
      validation_users: validation (every epoch, and the figures at the chosen epoch) is on the
        queries of this many users, a fixed sample drawn with `seed` (all users when there are
        no more than this; `tfrec.evaluation.sampling`).
      test_users: the test figures are on a sample of this many users' queries, each figure
        with its standard error; 0: every test query.
      seed: seeds the validation and test user samples (and nothing else).
    """

    ks: Widths = Field((10, 50, 100), min_length=1)
    protocol: Annotated[str, _one_of(_protocol_choices)] = "p1"
    p3_window_days: float | None = Field(None, gt=0)
    p3_window_share: float = Field(0.05, gt=0, lt=0.5)
    compare_protocol: str | None = None
    validation_users: int = Field(10_000, ge=1)
    test_users: int = Field(0, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _compare_with_the_other_protocol(self) -> Self:
        other = self.compare_protocol
        if other is not None and (other not in _protocol_choices() or other == self.protocol):
            raise rule_error("compare_protocol", f"must be null or the other of "
                             f"{_protocol_choices()} than evaluation.protocol, got {other!r}")
        return self


class UserTowerConfig(Section):
    """Args:
      features: the tower features to use: modules of tfrec/features/tower/ (watch_history,
        search_tokens, demographics, example_age, ...); the tower builds them in the features'
        own order, whatever the order of this list.
      demographic_columns: the users-table columns used as demographics.
      embedding_dim: video input embedding width (= output width if embeddings are shared).
      search_buckets: hash buckets of search tokens.
      search_dim, demographic_dim: their embedding widths.
      hidden_units: the ReLU tower; its last width is d, the size of u.
      dropout: dropout after each hidden layer (training only).
      l2: L2 penalty on the tower's kernels and the input embeddings.
      max_history, max_search_tokens: input widths.
      history_encoder: how the watch history becomes one vector: `mean` (the paper's masked
        average) or `attention` (learned positions through causal self-attention blocks, the
        newest position's output; `tfrec.models.history_encoders`).
      attention_blocks, attention_heads, attention_dropout: the attention encoder's depth, heads
        (embedding_dim must be a multiple of them) and dropout rate in training.
      example_age_scale: size of the example-age features [x, x^2] (x in [0, 1] over the
        training window) beside the embeddings (`tfrec.models.layers.ExampleAgeFeatures`).
      example_age_path: where example age enters: `first_layer` (the paper: beside the other
        features, into the ReLU tower) or `output_shift` (u = tower(other features) + W [x, x^2],
        a time-dependent popularity direction that leaves the taste part of u alone; at serving
        age 0 it vanishes). See docs/DESIGN_NOTES.md, "Example age".
    """

    features: TowerFeatures = ("watch_history", "demographics", "example_age")
    demographic_columns: Names = ("age", "gender", "occupation")
    embedding_dim: int = Field(64, gt=0)
    search_buckets: int = Field(100_000, gt=0)
    search_dim: int = Field(32, gt=0)
    demographic_dim: int = Field(8, gt=0)
    hidden_units: Widths = Field((128, 64), min_length=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    l2: float = Field(0.0, ge=0)
    max_history: int = Field(50, gt=0)
    max_search_tokens: int = Field(64, gt=0)
    history_encoder: Literal["mean", "attention"] = "mean"
    attention_blocks: int = Field(1, gt=0)
    attention_heads: int = Field(2, gt=0)
    attention_dropout: float = Field(0.0, ge=0, lt=1)
    example_age_scale: float = Field(0.05, gt=0)
    example_age_path: Literal["first_layer", "output_shift"] = "first_layer"

    @model_validator(mode="after")
    def _attention_heads_divide_the_width(self) -> Self:
        if self.history_encoder == "attention" and self.embedding_dim % self.attention_heads:
            raise rule_error("attention_heads", f"must divide embedding_dim "
                             f"({self.embedding_dim}) under history_encoder attention, got "
                             f"{self.attention_heads}")
        return self


class SoftmaxConfig(Section):
    """Args:
      loss: full | sampled | in_batch | mixed.
      num_negatives: N, the negatives drawn from Q per batch (sampled and mixed).
      proposal: uniform | unigram: Q over videos (unigram uses training label counts ** alpha).
      proposal_alpha: the unigram exponent (0.75 is word2vec's choice; 1 = label frequency).
      logq_correction: subtract log expected counts (turn off only to show why it matters).
      label_probability: counts | streaming: how in-batch candidates' probability is known,
        from training label counts, or estimated from the batch stream (Yi et al. 2019).
      streaming_alpha: the streaming estimator's moving-average rate.
      use_bias: a per-video bias b_j in the softmax.
      share_embeddings: the watch-history input embeddings are the softmax weights (needs the
        tower's last width = embedding_dim).
    """

    loss: Annotated[str, _one_of(_loss_choices)] = "sampled"
    num_negatives: int = Field(1024, gt=0)
    proposal: Literal["uniform", "unigram"] = "unigram"
    proposal_alpha: float = Field(0.75, ge=0)
    logq_correction: bool = True
    label_probability: Annotated[str, _one_of(_label_probability_choices)] = "counts"
    streaming_alpha: float = Field(0.01, gt=0, le=1)
    use_bias: bool = False
    share_embeddings: bool = False


class TrainingConfig(Section):
    """Args:
      epochs: most epochs; training stops earlier after `patience` epochs without improvement of
        `selection_metric` on validation, and the best epoch's weights are kept.
      batch_size: examples per step (the last partial batch is dropped: fixed loss scale).
      optimizer: adam | adagrad; learning_rate: its step size.
      selection_metric: a P1 metric name (map@100 is the paper's holdout MAP): recall@K for a K
        of evaluation.ks, ndcg@10 or map@100.
      patience: epochs without improvement before stopping.
      seed: seeds weights, shuffling and negative sampling.
      shuffle_buffer: examples in the shuffle buffer when training streams from shards
        (`examples.shards` > 0); in-memory training permutes all examples instead.
    """

    epochs: int = Field(20, gt=0)
    batch_size: int = Field(256, gt=0)
    optimizer: Literal["adam", "adagrad"] = "adam"
    learning_rate: float = Field(0.002, gt=0)
    selection_metric: str = "map@100"
    patience: int = Field(3, gt=0)
    seed: int = 0
    shuffle_buffer: int = Field(65536, gt=0)


class CandidateGenerationConfig(Section):
    """The candidate-generation stage: user tower, softmax loss and training schedule."""

    enabled: bool = True
    tower: UserTowerConfig = UserTowerConfig()
    softmax: SoftmaxConfig = SoftmaxConfig()
    training: TrainingConfig = TrainingConfig()

    @model_validator(mode="after")
    def _shared_embeddings_fit_the_tower(self) -> Self:
        tower = self.tower
        if self.softmax.share_embeddings and tower.hidden_units[-1] != tower.embedding_dim:
            raise rule_error("softmax.share_embeddings",
                             f"needs tower.hidden_units[-1] == tower.embedding_dim, got "
                             f"{self.tower.hidden_units[-1]} and {self.tower.embedding_dim}")
        return self


class ExportConfig(Section):
    """The serving exports (needs candidate generation).

    Args:
      enabled: export user_tower, retrieval_brute_force and retrieval_scann.
      saved_models_dir: export base folder (relative to the working directory).
      k: results per retrieval request.
      target_recall: ScaNN is tuned to this recall@k against exact search.
      tuning_queries: ScaNN is tuned on at most this many validation queries (a seeded sample
        of users, `evaluation.seed`).
      recall_queries: its recall against exact search and both searchers' speed are measured
        on at most this many test queries, which it was not tuned on.
      keep_versions: version sets kept in saved_models_dir (the newest; older ones are deleted).
    """

    enabled: bool = True
    saved_models_dir: str = "saved_models"
    k: int = Field(100, ge=1)
    target_recall: float = Field(0.95, gt=0, le=1)
    tuning_queries: int = Field(10_000, ge=1)
    recall_queries: int = Field(10_000, ge=1)
    keep_versions: int = Field(3, ge=1)


class RetrievedImpressionsConfig(Section):
    """Impressions for sources without them (MovieLens): each next-watch example's page is the
    true next watch plus `negatives_per_page` videos drawn from the candidate generator's top
    `top_n` at that time (`tfrec.features.retrieved_impressions`).

    Args:
      positive: always | if_retrieved (see retrieved_impressions).
      max_train_pages: training pages (sampled from the training examples).
    """

    top_n: int = Field(50, gt=0)
    negatives_per_page: int = Field(9, gt=0)
    seed: int = 0
    positive: Literal["always", "if_retrieved"] = "always"
    max_train_pages: int = Field(20_000, gt=0)

    @model_validator(mode="after")
    def _negatives_fit_in_top_n(self) -> Self:
        if self.negatives_per_page > self.top_n:
            raise rule_error("negatives_per_page", f"must be <= 'top_n' ({self.top_n}), got "
                             f"{self.negatives_per_page}")
        return self


class RankingConfig(Section):
    """The ranker (weighted logistic regression for expected watch time, `tfrec.models.ranking`).

    Args:
      features: which ranker feature groups to use, each a module of tfrec/features/ranker/
        (shipped: video_id, watch_history, language, continuous = the CDF-normalised counts and
        times with x^2 and sqrt(x), and the 0/1 indicators; cg_score = the candidate
        generator's score, see `candidate_generation_scores`).
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

    features: RankingFeatures = RANKING_FEATURES
    hidden_units: Widths = (256,)
    embedding_dim: int = Field(32, gt=0)
    language_dim: int = Field(8, gt=0)
    weighted: bool = True
    negatives: Literal["not_clicked", "all_impressions"] = "not_clicked"
    click_head: bool = True
    negative_subsample_rate: float = Field(1.0, gt=0, le=1)
    calibrate: bool = True
    quantiles: int = Field(100, gt=0)
    max_history: int = Field(50, gt=0)
    epochs: int = Field(10, gt=0)
    patience: int = Field(2, gt=0)
    selection_metric: Literal["weighted_per_user_loss", "weighted_logistic_loss"] = \
        "weighted_per_user_loss"
    batch_size: int = Field(512, gt=0)
    optimizer: Literal["adam", "adagrad"] = "adam"
    learning_rate: float = Field(0.002, gt=0)
    l2: float = Field(0.0, ge=0)
    seed: int = 0


class RankingStageConfig(Section):
    """The ranking stage (weighted logistic regression for expected watch time); its rules are
    checked even when it is disabled (a typo should not wait).

    Args:
      enabled: train, evaluate and export the ranker (off by default).
      model: RankingConfig (features, tower, training schedule, subsampling, click head).
      retrieved_impressions: how impressions are built when the source logged none.
      validation_fraction, test_fraction: P1: time split of logged impressions (latest = test).
      cross_fit_folds: P1, with cg_score among the ranker's features: its training pages are
        built (when retrieved) and scored by this many
        generators, each trained on the other folds' users (`tfrec.models.cross_fitting`); 0 or
        1: by the run's own generator (whose score is optimistic on its training watches).
      p3_holdout_share: P3: the latest share of the validation window's pages held out for the
        ranker's epoch choice and Platt scaling (it trains on the rest).
      true_expected_column: impressions column with the true expected watch time (a simulator's)
        for calibration; None skips calibration.
    """

    enabled: bool = False
    model: RankingConfig = RankingConfig()
    retrieved_impressions: RetrievedImpressionsConfig = RetrievedImpressionsConfig()
    validation_fraction: float = Field(0.1, gt=0)
    test_fraction: float = Field(0.1, gt=0)
    p3_holdout_share: float = Field(0.25, gt=0, lt=1)
    cross_fit_folds: int = Field(2, ge=0)
    true_expected_column: str | None = None

    @model_validator(mode="after")
    def _fractions_leave_training_impressions(self) -> Self:
        total = self.validation_fraction + self.test_fraction
        if total >= 1:
            raise rule_error("validation_fraction", f"and 'test_fraction' must sum to < 1, "
                             f"got {total}")
        return self


class PipelineConfig(Section):
    """A whole pipeline run; `name` names the folder runs/<name>/."""

    name: Annotated[str, AfterValidator(_folder_name)]
    data: DataConfig = DataConfig()
    examples: ExampleConfig = ExampleConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    candidate_generation: CandidateGenerationConfig = CandidateGenerationConfig()
    export: ExportConfig = ExportConfig()
    ranking: RankingStageConfig = RankingStageConfig()

    @model_validator(mode="after")
    def _sections_agree(self) -> Self:
        cg = self.candidate_generation
        if cg.tower.max_history != self.examples.max_history:
            raise rule_error("candidate_generation.tower.max_history",
                             f"({cg.tower.max_history}) must equal 'examples.max_history' "
                             f"({self.examples.max_history})")
        metrics = tuple(f"recall@{k}" for k in self.evaluation.ks) + ("ndcg@10", "map@100")
        _choice(cg.training.selection_metric, metrics,
                "candidate_generation.training.selection_metric")
        if self.export.enabled and not cg.enabled:
            raise rule_error("export.enabled", "needs 'candidate_generation.enabled'")
        needing = _ranker_features_needing_generator(self.ranking.model.features) \
            if self.ranking.enabled and not cg.enabled else []
        if needing:
            raise rule_error("ranking.model.features", f"{', '.join(needing)} needs "
                             "'candidate_generation.enabled'")
        return self
