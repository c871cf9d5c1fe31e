"""The registry of pipeline stages: one module per stage in `tfrec/pipeline/stages/`, the run
order from their declared dependencies.

A stage is a `tfrec.stages.Stage` instance (its functions and cache-key inputs), not a class, so
this is a thin registry on `tfrec.registry.Registry`: the same names (the package's module names,
read without importing), the same one-module-per-entry rule (a stage's `run` is defined in
`tfrec.pipeline.stages.<name>`), but `register_stage(Stage(...))` adds an instance. Each stage
module ends with

    STAGE = register_stage(Stage("<name>", run, load, depends_on=(...), ..., rank=...))

`pipeline_stages()` imports every module of the package and orders the stages topologically:
a stage runs after everything in its `depends_on` and `optional_depends_on`; among the stages
whose dependencies have run, the lowest `Stage.rank` (then the name) runs first, so the order
is the same on every machine. See docs/EXTENDING_STAGE.md.
"""

from tfrec.registry import Registry
from tfrec.stages import Stage


class StageRegistry(Registry):
    """Stage name -> `Stage`, the names being the modules of `package` (module docstring)."""

    registration_hint = " (it should end with STAGE = register_stage(Stage(...)))"

    def __init__(self, package: str) -> None:
        super().__init__("stage", package)

    def add(self, stage: Stage) -> Stage:
        """Register `stage` (returned unchanged), whose `run` must be defined in
        `<package>.<stage.name>` (so that `names()`, which reads module names only, lists it)."""
        self.add_entry(stage.name, stage, stage.run.__module__,
                       f"run function {stage.run.__qualname__}")
        return stage

    def get(self, name: str) -> Stage:
        """The stage registered as `name` (imports its module)."""
        stage = super().get(name)
        assert isinstance(stage, Stage)
        return stage

    def stages(self) -> list[Stage]:
        """Every registered stage, in run order (`run_order`)."""
        return run_order([self.get(name) for name in self.names()])


def run_order(stages: list[Stage]) -> list[Stage]:
    """`stages` sorted so that each comes after its dependencies (required and optional); among
    those free to go next, the lowest (rank, name) first. Raises ValueError for a dependency on
    a stage that is not there, or a cycle (naming the stages in it)."""
    by_name = {s.name: s for s in stages}
    needs: dict[str, set[str]] = {}
    for stage in stages:
        deps = set(stage.depends_on) | set(stage.optional_depends_on)
        unknown = sorted(deps - set(by_name))
        if unknown:
            raise ValueError(f"stage {stage.name!r} depends on unknown stage {unknown[0]!r} "
                             f"(stages: {sorted(by_name)})")
        needs[stage.name] = deps
    order: list[Stage] = []
    done: set[str] = set()
    while len(order) < len(stages):
        ready = [s for s in stages if s.name not in done and needs[s.name] <= done]
        if not ready:
            left = sorted(set(by_name) - done)
            raise ValueError(f"the stages {left} cannot be ordered: their dependencies form a "
                             "cycle")
        first = min(ready, key=lambda s: (s.rank, s.name))
        order.append(first)
        done.add(first.name)
    return order


STAGES = StageRegistry("tfrec.pipeline.stages")
register_stage = STAGES.add


def pipeline_stages() -> list[Stage]:
    """The pipeline's stages in run order (every module of `tfrec/pipeline/stages/`)."""
    return STAGES.stages()
