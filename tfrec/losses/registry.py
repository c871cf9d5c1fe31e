"""Registries of the candidate-generation softmax losses and label-probability sources.

A registry maps a config name (`candidate_generation.softmax.loss`, `.label_probability`) to a
class. Its names are the modules of one package, one module per entry, named as in the config:

  tfrec/losses/softmax/<name>.py            one class under @register_loss("<name>")
  tfrec/losses/label_probability/<name>.py  one class under @register_label_probability("<name>")

so adding a loss is adding one file there (and its test). The names are read from the package's
folder without importing it: this module imports no TensorFlow, and `tfrec.config` validates a
config with it before TensorFlow starts. The class of a name is imported only when asked for.
"""
import importlib
import importlib.util
import pkgutil


class Registry:
    """Config name -> class, the names being the modules of `package` (see the module docstring).

    Args:
      kind: what an entry is, for error messages ("loss").
      package: dotted package of the entries' modules (found, not imported, by `names`).
    """

    def __init__(self, kind, package):
        self.kind = kind
        self.package = package
        self._classes = {}

    def names(self):
        """Sorted tuple of the registered names (the package's public module names)."""
        # find_spec imports the parent packages (tfrec.losses: a docstring), not this one.
        folders = importlib.util.find_spec(self.package).submodule_search_locations
        return tuple(sorted(m.name for m in pkgutil.iter_modules(folders)
                            if not m.name.startswith("_")))

    def register(self, name):
        """Class decorator: `cls` is the entry `name`, and must be defined in `<package>.<name>`
        (so that `names()`, which reads module names only, lists it). Sets `cls.name = name`."""
        def decorate(cls):
            module = f"{self.package}.{name}"
            if cls.__module__ != module:
                raise ValueError(f"{self.kind} {name!r} must be defined in module {module}, "
                                 f"not {cls.__module__}")
            known = self._classes.get(name)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise ValueError(f"{self.kind} {name!r} is registered twice: "
                                 f"{known.__qualname__} and {cls.__qualname__}")
            cls.name = name
            self._classes[name] = cls
            return cls
        return decorate

    def get(self, name):
        """The class registered as `name` (imports its module). Raises ValueError naming the
        choices for an unknown name."""
        if name not in self.names():
            raise ValueError(f"unknown {self.kind} {name!r}; choose from {self.names()}")
        importlib.import_module(f"{self.package}.{name}")
        if name not in self._classes:
            raise ValueError(f"module {self.package}.{name} registers no {self.kind} {name!r}")
        return self._classes[name]


LOSSES = Registry("loss", "tfrec.losses.softmax")
LABEL_PROBABILITIES = Registry("label_probability", "tfrec.losses.label_probability")

register_loss = LOSSES.register
register_label_probability = LABEL_PROBABILITIES.register
loss_names = LOSSES.names
label_probability_names = LABEL_PROBABILITIES.names
