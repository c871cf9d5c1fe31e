"""Registry of the user tower's features (`candidate_generation.tower.features`).

Its names are the modules of `tfrec/features/tower/`, one module per feature, named as in the
config, each defining one `TowerFeature` class under `@register_tower_feature("<name>")`. The
names are read from the folder without importing it: this module imports no TensorFlow, and
`tfrec.config` validates a config's features with it before TensorFlow starts.
"""
from tfrec.registry import Registry

TOWER_FEATURES = Registry("tower feature", "tfrec.features.tower")

register_tower_feature = TOWER_FEATURES.register
tower_feature_names = TOWER_FEATURES.names
