"""The main job: events -> examples -> popularity -> candidate_generation -> export (and the
other protocol, cross-fitting, ranking, publish); then the report.

Each stage is a `tfrec.stages.Stage` in its own module of `tfrec/pipeline/stages/`: a `run`
function that computes and writes its outputs into runs/<name>/<stage>/ and returns its metrics
sections, and a `load` function that reads them back. The stages register themselves
(`tfrec.pipeline.registry`), and `pipeline_stages()` orders them by their dependencies. A rerun
loads the stages whose inputs did not change instead of running them. Adding a stage is adding
one module there (docs/EXTENDING_STAGE.md).

Modules: `runner` (run_pipeline), `registry` (the stages and their order), `data_source` (the
events), `retrieval_figures` (popularity's and a generator's figures), `ranking_pages` (the
ranker's examples).
"""
from tfrec.pipeline.data_source import load_events, simulated_world
from tfrec.pipeline.registry import STAGES, pipeline_stages, register_stage
from tfrec.pipeline.retrieval_figures import evaluation_ks
from tfrec.pipeline.runner import run_pipeline

__all__ = ["STAGES", "evaluation_ks", "load_events", "pipeline_stages", "register_stage",
           "run_pipeline", "simulated_world"]
