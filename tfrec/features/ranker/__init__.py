"""The ranker's feature groups (`ranking.model.features`): one module per group, named as in the
config, each defining one `RankerFeature` class under `@register_ranker_feature("<name>")`:

  tfrec/features/ranker/<name>.py   the group's example columns (computed offline from the event
                                    tables), its Keras inputs (the exported ranker's signature)
                                    and its encoding into the ranker's input

Adding a group is adding one file there and its test (docs/EXTENDING_RANKER_FEATURE.md). The names
are read from the package's folder without importing it: this module imports no TensorFlow, so
`tfrec.config` lists the choices before TensorFlow starts. Private modules (`_base`, `_pages`,
`_video_embedding`) are helpers, not groups. A plugin kept outside the repository joins by
putting its folder on this package's path: `tfrec.features.ranker.__path__.append(folder)`.
"""
from tfrec.registry import Registry

RANKER_FEATURES = Registry("ranker feature", "tfrec.features.ranker")

register_ranker_feature = RANKER_FEATURES.register
ranker_feature_names = RANKER_FEATURES.names
