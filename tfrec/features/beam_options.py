"""Apache Beam pipeline options from the config's examples.beam (imports Beam: the beam extra)."""
from __future__ import annotations

import functools
import typing

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

if typing.TYPE_CHECKING:
    from tfrec.config.schema import BeamConfig


@functools.cache
def pipeline_option_names() -> frozenset[str]:
    """The names (argparse dests, e.g. direct_num_workers) of every pipeline option Beam defines:
    its option classes declare them in `_add_argparse_args`, as `PipelineOptions` reads them."""
    parser = _BeamArgumentParser(add_help=False, allow_abbrev=False)
    for options_class in PipelineOptions.__subclasses__():
        options_class._add_argparse_args(parser)
    return frozenset(action.dest for action in parser._actions)


def pipeline_options(config: BeamConfig) -> PipelineOptions:
    """PipelineOptions of `config`: its runner and options."""
    return PipelineOptions.from_dictionary({"runner": config.runner, **config.options})
