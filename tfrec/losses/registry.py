"""Registries of the candidate-generation softmax losses and label-probability sources.

A registry maps a config name (`candidate_generation.softmax.loss`, `.label_probability`) to a
class. Its names are the modules of one package, one module per entry, named as in the config:

  tfrec/losses/softmax/<name>.py            one class under @register_loss("<name>")
  tfrec/losses/label_probability/<name>.py  one class under @register_label_probability("<name>")

so adding a loss is adding one file there (and its test). The names are read from the package's
folder without importing it: this module imports no TensorFlow, and `tfrec.config` validates a
config with it before TensorFlow starts. The class of a name is imported only when asked for.
"""
from tfrec.registry import Registry

LOSSES = Registry("loss", "tfrec.losses.softmax")
LABEL_PROBABILITIES = Registry("label_probability", "tfrec.losses.label_probability")

register_loss = LOSSES.register
register_label_probability = LABEL_PROBABILITIES.register
loss_names = LOSSES.names
label_probability_names = LABEL_PROBABILITIES.names
