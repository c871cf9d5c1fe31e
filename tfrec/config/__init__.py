"""Pipeline configuration: a typed pydantic schema (`schema`), loaded from YAML and checked before
anything runs (`loading`); rules that need the data run once it is read (`data_checks`).

An unknown key, a value of the wrong type or out of range, or a broken rule across fields is a
`ConfigError` naming the file and the full dotted key (with the nearest valid key for a typo).
"""
from tfrec.config.data_checks import check_against_data
from tfrec.config.errors import ConfigError
from tfrec.config.loading import load_config, parse_config, to_dict
from tfrec.config.schema import (RANKING_FEATURES, CandidateGenerationConfig,
                                 DataConfig, EvaluationConfig, ExampleConfig, ExportConfig,
                                 PipelineConfig, RankingConfig, RankingStageConfig,
                                 RetrievedImpressionsConfig, SimulationConfig, SoftmaxConfig,
                                 TrainingConfig, UserTowerConfig)

__all__ = ["RANKING_FEATURES", "CandidateGenerationConfig", "ConfigError",
           "DataConfig", "EvaluationConfig", "ExampleConfig", "ExportConfig", "PipelineConfig",
           "RankingConfig", "RankingStageConfig", "RetrievedImpressionsConfig",
           "SimulationConfig", "SoftmaxConfig", "TrainingConfig", "UserTowerConfig",
           "check_against_data", "load_config", "parse_config", "to_dict"]
