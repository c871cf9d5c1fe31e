"""A registry: config name -> class, one module per entry, names read without importing.

Every extension point of tfrec (softmax losses, label-probability sources, tower features,
ranker features, pipeline stages) is a package with one module per entry, named as in the config;
the module defines the entry's class under `@<registry>.register("<name>")`. Adding an entry is
adding one file (and its test). `Registry.names()` reads the package's folder without importing
it, so config validation knows the choices before TensorFlow starts; an entry's module is
imported only when its class is asked for.
"""
import importlib
import importlib.util
import pkgutil
import sys


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
        package = sys.modules.get(self.package)
        if package is not None:  # the live path: a folder appended to it adds its entries
            folders = package.__path__
        else:  # find_spec imports the parent packages (docstrings), not this one
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


