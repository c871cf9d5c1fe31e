"""The pipeline's stages, one module per stage, named as the stage (and its folder under
runs/<name>/). Each module ends with `STAGE = register_stage(Stage(...))`
(`tfrec.pipeline.registry`); `tfrec.pipeline.pipeline_stages()` finds them all and orders them by
their dependencies. Adding a stage is adding one module here (docs/EXTENDING_STAGE.md)."""
