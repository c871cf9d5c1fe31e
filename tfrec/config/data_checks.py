"""Config rules that need the data (corpus and training-set sizes): checked after it is read."""
from typing import Any

from tfrec.config.errors import ConfigError
from tfrec.config.schema import PipelineConfig


def check_against_data(config: PipelineConfig, metrics: dict[str, Any]) -> None:
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

