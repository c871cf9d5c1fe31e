"""Pipeline configuration: typed dataclasses, loaded from YAML and validated before anything runs.

An unknown key or a value of the wrong type is a `ConfigError` naming the key (with the nearest
valid key when there is one) and the file.
"""
import dataclasses
import difflib
import math
import re
import typing

import yaml

from tfrec.features.candidate_examples import ExampleConfig
from tfrec.features.split import PROTOCOLS
from tfrec.losses.registry import label_probability_names, loss_names
from tfrec.models.config import (RANKING_FEATURES, RankingConfig, SoftmaxConfig, TrainingConfig,
                                 UserTowerConfig)

DATA_FORMATS = ("recbole", "grouplens", "tfds", "events", "simulator")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ConfigError(ValueError):
    """A configuration file is invalid."""


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    """The simulated world of data.format simulator (tfrec.data.simulator).

    Args:
      preset: tiny | small | medium | large.
      seed: the world and its logs are a function of (preset, seed).
    """

    preset: str = "small"
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class DataConfig:
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
    format: str = "recbole"
    path: typing.Optional[str] = None
    cache_dir: typing.Optional[str] = None
    tfds_data_dir: typing.Optional[str] = None
    simulator: SimulationConfig = SimulationConfig()


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
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
    """

    ks: typing.List[int] = (10, 50, 100)
    protocol: str = "p1"
    p3_window_days: typing.Optional[float] = None
    p3_window_share: float = 0.05
    compare_protocol: typing.Optional[str] = None


@dataclasses.dataclass(frozen=True)
class CandidateGenerationConfig:
    """The candidate-generation stage: user tower, softmax loss and training schedule."""

    enabled: bool = True
    tower: UserTowerConfig = UserTowerConfig()
    softmax: SoftmaxConfig = SoftmaxConfig()
    training: TrainingConfig = TrainingConfig()


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """The serving exports (needs candidate generation).

    Args:
      enabled: export user_tower, retrieval_brute_force and retrieval_scann.
      saved_models_dir: export base folder (relative to the working directory).
      k: results per retrieval request.
      target_recall: ScaNN is tuned to this recall@k against exact search.
      keep_versions: version sets kept in saved_models_dir (the newest; older ones are deleted).
    """

    enabled: bool = True
    saved_models_dir: str = "saved_models"
    k: int = 100
    target_recall: float = 0.95
    keep_versions: int = 3


@dataclasses.dataclass(frozen=True)
class RetrievedImpressionsConfig:
    """Impressions for sources without them (MovieLens): each next-watch example's page is the
    true next watch plus `negatives_per_page` videos drawn from the candidate generator's top
    `top_n` at that time (`tfrec.features.retrieved_impressions`)."""

    top_n: int = 50
    negatives_per_page: int = 9
    seed: int = 0
    positive: str = "always"  # always | if_retrieved (see retrieved_impressions)
    max_train_pages: int = 20_000  # training pages (sampled from the training examples)


@dataclasses.dataclass(frozen=True)
class RankingStageConfig:
    """The ranking stage (weighted logistic regression for expected watch time).

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
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    p3_holdout_share: float = 0.25
    cross_fit_folds: int = 2
    true_expected_column: typing.Optional[str] = None


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """A whole pipeline run; `name` names the folder runs/<name>/."""

    name: str
    data: DataConfig = DataConfig()
    examples: ExampleConfig = ExampleConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    candidate_generation: CandidateGenerationConfig = CandidateGenerationConfig()
    export: ExportConfig = ExportConfig()
    ranking: RankingStageConfig = RankingStageConfig()


def _check_type(value, annotation, key, where):
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return value
        return _check_type(value, next(a for a in options if a is not type(None)), key, where)
    if origin in (list, typing.List):
        (item,) = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: '{key}' must be a list, got {value!r}")
        return tuple(_check_type(v, item, key, where) for v in value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is int and isinstance(value, bool) or not isinstance(value, annotation):
        raise ConfigError(f"{where}: '{key}' must be {annotation.__name__}, got {value!r}")
    # YAML reads .nan and .inf as floats, and `value <= 0` is False for NaN: refuse them here,
    # once, so no range check below can be fooled by one.
    if annotation is float and not math.isfinite(value):
        raise ConfigError(f"{where}: '{key}' must be a finite number, got {value!r}")
    return value


def from_dict(cls, data, where, prefix=""):
    """Build dataclass `cls` from a mapping, checking every key and type."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: '{prefix.rstrip('.') or 'config'}' must be a mapping, "
                          f"got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f"; did you mean '{prefix}{close[0]}'?" if close else \
            f"; valid keys: {sorted(fields)}"
        raise ConfigError(f"{where}: unknown key '{prefix}{key}'{hint}")
    kwargs = {}
    for name, value in data.items():
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            kwargs[name] = from_dict(annotation, value, where, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_type(value, annotation, prefix + name, where)
    missing = [n for n, f in fields.items() if n not in kwargs and
               f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing key '{prefix}{missing[0]}'")
    return cls(**kwargs)


def validate(config, where):
    """Rules across fields that types alone cannot express."""
    if not NAME_PATTERN.match(config.name):
        raise ConfigError(f"{where}: 'name' {config.name!r} must be letters, digits, '_', '.', '-' "
                          "(it names a folder under runs/)")
    if config.data.format not in DATA_FORMATS:
        raise ConfigError(f"{where}: 'data.format' must be one of {DATA_FORMATS}, "
                          f"got {config.data.format!r}")
    if config.data.format == "tfds" and not config.data.tfds_data_dir:
        raise ConfigError(f"{where}: 'data.tfds_data_dir' is required when data.format is tfds")
    if config.data.format in ("grouplens", "events") and not config.data.path:
        raise ConfigError(f"{where}: 'data.path' is required when data.format is "
                          f"{config.data.format}")
    if config.data.format == "simulator":
        from tfrec.data.simulator.config import PRESETS
        if config.data.simulator.preset not in PRESETS:
            raise ConfigError(f"{where}: 'data.simulator.preset' must be one of {sorted(PRESETS)}, "
                              f"got {config.data.simulator.preset!r}")
    ex = config.examples
    for key in ("max_history", "max_search_queries"):
        if getattr(ex, key) < 1:
            raise ConfigError(f"{where}: 'examples.{key}' must be >= 1")
    if ex.max_examples_per_user < 0 or ex.min_history < 0:
        raise ConfigError(f"{where}: 'examples.max_examples_per_user' and 'examples.min_history' "
                          "must be >= 0")
    cg = config.candidate_generation
    choices = {"softmax.loss": (cg.softmax.loss, loss_names()),
               "softmax.proposal": (cg.softmax.proposal, ("uniform", "unigram")),
               "training.optimizer": (cg.training.optimizer, ("adam", "adagrad")),
               "training.selection_metric": (cg.training.selection_metric,
                                             tuple(f"recall@{k}" for k in config.evaluation.ks)
                                             + ("ndcg@10", "map@100"))}
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"{where}: 'candidate_generation.{key}' must be one of {allowed}, "
                              f"got {value!r}")
    bad = set(cg.tower.features) - {"watch_history", "search_tokens", "demographics",
                                    "example_age"}
    if bad:
        raise ConfigError(f"{where}: 'candidate_generation.tower.features' has unknown "
                          f"{sorted(bad)}")
    if cg.tower.max_history != config.examples.max_history:
        raise ConfigError(f"{where}: 'candidate_generation.tower.max_history' "
                          f"({cg.tower.max_history}) must equal 'examples.max_history' "
                          f"({config.examples.max_history})")
    positive = {"tower.embedding_dim": cg.tower.embedding_dim,
                "tower.search_buckets": cg.tower.search_buckets,
                "tower.search_dim": cg.tower.search_dim,
                "tower.demographic_dim": cg.tower.demographic_dim,
                "tower.max_search_tokens": cg.tower.max_search_tokens,
                "tower.example_age_scale": cg.tower.example_age_scale,
                "softmax.num_negatives": cg.softmax.num_negatives,
                "training.epochs": cg.training.epochs,
                "training.batch_size": cg.training.batch_size,
                "training.learning_rate": cg.training.learning_rate,
                "training.patience": cg.training.patience}
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{where}: 'candidate_generation.{key}' must be > 0, got {value}")
    if not cg.tower.hidden_units or min(cg.tower.hidden_units) < 1:
        raise ConfigError(f"{where}: 'candidate_generation.tower.hidden_units' must be a "
                          "non-empty list of positive widths (its last is the size of u)")
    if cg.softmax.share_embeddings and cg.tower.hidden_units[-1] != cg.tower.embedding_dim:
        raise ConfigError(f"{where}: 'candidate_generation.softmax.share_embeddings' needs "
                          "tower.hidden_units[-1] == tower.embedding_dim")
    if not 0 <= cg.tower.dropout < 1 or cg.tower.l2 < 0:
        raise ConfigError(f"{where}: 'candidate_generation.tower.dropout' must be in [0, 1) "
                          "and 'tower.l2' >= 0")
    if cg.softmax.label_probability not in label_probability_names():
        raise ConfigError(f"{where}: 'candidate_generation.softmax.label_probability' must be "
                          f"{' or '.join(label_probability_names())}, got "
                          f"{cg.softmax.label_probability!r}")
    if not 0 < cg.softmax.streaming_alpha <= 1 or cg.softmax.proposal_alpha < 0:
        raise ConfigError(f"{where}: 'candidate_generation.softmax.streaming_alpha' must be in "
                          "(0, 1] and 'softmax.proposal_alpha' >= 0")
    if config.export.enabled and not cg.enabled:
        raise ConfigError(f"{where}: 'export.enabled' needs 'candidate_generation.enabled'")
    if not 0 < config.export.target_recall <= 1 or config.export.k < 1:
        raise ConfigError(f"{where}: 'export.target_recall' must be in (0, 1] and 'export.k' >= 1")
    if config.export.keep_versions < 1:
        raise ConfigError(f"{where}: 'export.keep_versions' must be >= 1")
    ev = config.evaluation
    if not ev.ks or min(ev.ks) < 1:
        raise ConfigError(f"{where}: 'evaluation.ks' must be positive integers")
    if ev.protocol not in PROTOCOLS:
        raise ConfigError(f"{where}: 'evaluation.protocol' must be one of {PROTOCOLS}, "
                          f"got {ev.protocol!r}")
    if ev.compare_protocol not in (None, *PROTOCOLS) or ev.compare_protocol == ev.protocol:
        raise ConfigError(f"{where}: 'evaluation.compare_protocol' must be null or the other "
                          f"of {PROTOCOLS} than evaluation.protocol, got {ev.compare_protocol!r}")
    if ev.p3_window_days is not None and ev.p3_window_days <= 0:
        raise ConfigError(f"{where}: 'evaluation.p3_window_days' must be > 0 or null, "
                          f"got {ev.p3_window_days}")
    if not 0 < ev.p3_window_share < 0.5:
        raise ConfigError(f"{where}: 'evaluation.p3_window_share' must be in (0, 0.5), "
                          f"got {ev.p3_window_share}")
    _validate_ranking(config.ranking, config, where)
    return config


def _validate_ranking(stage, config, where):
    """Rules of the `ranking` section (checked even when it is disabled: a typo should not wait)."""
    m = stage.model
    bad = set(m.features) - set(RANKING_FEATURES)
    if bad:
        raise ConfigError(f"{where}: 'ranking.model.features' has unknown {sorted(bad)}; "
                          f"choose from {list(RANKING_FEATURES)}")
    positive = {"model.embedding_dim": m.embedding_dim, "model.language_dim": m.language_dim,
                "model.quantiles": m.quantiles, "model.max_history": m.max_history,
                "model.epochs": m.epochs, "model.patience": m.patience,
                "model.batch_size": m.batch_size, "model.learning_rate": m.learning_rate,
                "retrieved_impressions.top_n": stage.retrieved_impressions.top_n,
                "retrieved_impressions.negatives_per_page":
                    stage.retrieved_impressions.negatives_per_page,
                "retrieved_impressions.max_train_pages":
                    stage.retrieved_impressions.max_train_pages}
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{where}: 'ranking.{key}' must be > 0, got {value}")
    if any(u < 1 for u in m.hidden_units):
        raise ConfigError(f"{where}: 'ranking.model.hidden_units' must be positive widths "
                          "([] = logistic regression)")
    if not 0 < m.negative_subsample_rate <= 1:
        raise ConfigError(f"{where}: 'ranking.model.negative_subsample_rate' must be in (0, 1], "
                          f"got {m.negative_subsample_rate}")
    if m.l2 < 0:
        raise ConfigError(f"{where}: 'ranking.model.l2' must be >= 0")
    choices = {"model.optimizer": (m.optimizer, ("adam", "adagrad")),
               "model.negatives": (m.negatives, ("not_clicked", "all_impressions")),
               "model.selection_metric": (m.selection_metric, ("weighted_per_user_loss",
                                                               "weighted_logistic_loss"))}
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"{where}: 'ranking.{key}' must be one of {allowed}, got {value!r}")
    if stage.retrieved_impressions.positive not in ("always", "if_retrieved"):
        raise ConfigError(f"{where}: 'ranking.retrieved_impressions.positive' must be always or "
                          f"if_retrieved, got {stage.retrieved_impressions.positive!r}")
    if stage.retrieved_impressions.negatives_per_page > stage.retrieved_impressions.top_n:
        raise ConfigError(f"{where}: 'ranking.retrieved_impressions.negatives_per_page' must be "
                          "<= 'top_n'")
    if stage.cross_fit_folds < 0:
        raise ConfigError(f"{where}: 'ranking.cross_fit_folds' must be >= 0 (0 or 1 = off), "
                          f"got {stage.cross_fit_folds}")
    if not 0 < stage.p3_holdout_share < 1:
        raise ConfigError(f"{where}: 'ranking.p3_holdout_share' must be in (0, 1), "
                          f"got {stage.p3_holdout_share}")
    if not (0 < stage.validation_fraction and 0 < stage.test_fraction
            and stage.validation_fraction + stage.test_fraction < 1):
        raise ConfigError(f"{where}: 'ranking.validation_fraction' and 'test_fraction' must be > 0 "
                          "with a sum < 1")
    if stage.enabled and "cg_score" in m.features and not config.candidate_generation.enabled:
        raise ConfigError(f"{where}: 'ranking.model.features' cg_score needs "
                          "'candidate_generation.enabled'")


def check_against_data(config, metrics):
    """Rules that need the data, checked as soon as its facts are in the run's metrics (right
    after the events and examples stages, before any training): a ConfigError otherwise.

    Args:
      metrics: the run's metrics so far; uses `data.videos` and `examples.train` when present.
    """
    videos = metrics.get("data", {}).get("videos")
    train = metrics.get("examples", {}).get("train")
    cg, where = config.candidate_generation, f"config '{config.name}'"
    if videos is not None and cg.enabled and config.export.enabled and config.export.k > videos:
        raise ConfigError(f"{where}: 'export.k' ({config.export.k}) is more than the {videos} "
                          f"videos in the data; set export.k <= {videos}")
    top_n = config.ranking.retrieved_impressions.top_n
    if videos is not None and cg.enabled and config.ranking.enabled and top_n > videos:
        raise ConfigError(f"{where}: 'ranking.retrieved_impressions.top_n' ({top_n}) is more "
                          f"than the {videos} videos in the data; set it <= {videos}")
    if train is not None and cg.enabled and cg.training.batch_size > train:
        raise ConfigError(f"{where}: 'candidate_generation.training.batch_size' "
                          f"({cg.training.batch_size}) is more than the {train} training "
                          f"examples (the last partial batch is dropped, so no step would run); "
                          f"set it <= {train}")


def load_config(path, overrides=()):
    """Read, parse (yaml.safe_load) and validate a pipeline config file.

    overrides: "dotted.key=value" strings applied on top of the file (value parsed as YAML),
      e.g. ("ranking.cross_fit_folds=0", "name=variant"); checked like the file's keys.
    """
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: no such config file") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    for override in overrides:
        data = _apply_override(data, override, str(path))
    return validate(from_dict(PipelineConfig, data, str(path)), str(path))


def _apply_override(data, override, where):
    """`data` (a mapping) with one "dotted.key=value" override set (a copy)."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{where}: --set {override!r} must look like section.key=value")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: --set {override!r}: not a YAML value: {err}") from err
    data = dict(data or {})
    node, parts = data, key.strip().split(".")
    for part in parts[:-1]:
        child = node.get(part)
        node[part] = dict(child) if isinstance(child, dict) else ({} if child is None else child)
        node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: --set {override!r}: '{part}' is not a section")
    node[parts[-1]] = value
    return data


def to_dict(config):
    """Plain dict (lists for tuples) for writing the resolved config."""
    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(config))
