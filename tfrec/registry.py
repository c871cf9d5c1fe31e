"""A registry: config name -> class, one module per entry, names read without importing.

Every extension point of tfrec (softmax losses, label-probability sources, tower features,
ranker features, pipeline stages) is a package with one module per entry, named as in the config;
the module defines the entry's class under `@<registry>.register("<name>")`. Adding an entry is
adding one file (and its test). `Registry.names()` reads the package's folder without importing
it, so config validation knows the choices before TensorFlow starts; an entry's module is
imported only when its class is asked for.
"""
import ast
import importlib
import importlib.util
import os
import pkgutil
import re
import sys
from collections.abc import Callable
from typing import Any


class Registry:
    """Config name -> class, the names being the modules of `package` (see the module docstring).

    Args:
      kind: what an entry is, for error messages ("loss").
      package: dotted package of the entries' modules (found, not imported, by `names`).
    """

    registration_hint = ""  # how a module registers its entry, for the "registers no" error

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.package = package
        self._entries: dict[str, Any] = {}
        self._qualnames: dict[str, str] = {}

    def names(self) -> tuple[str, ...]:
        """Sorted tuple of the registered names (the package's public module names)."""
        folders = self._folders()
        return tuple(sorted(m.name for m in pkgutil.iter_modules(folders)
                            if not m.name.startswith("_")))

    def _folders(self) -> list[str]:
        """The folders of the entries' package."""
        package = sys.modules.get(self.package)
        if package is not None:  # the live path: a folder appended to it adds its entries
            return list(package.__path__)
        # find_spec imports the parent packages (docstrings), not this one.
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.submodule_search_locations is None:
            raise ValueError(f"{self.package} is not a package of {self.kind} modules")
        return list(spec.submodule_search_locations)

    def add_entry(self, name: str, entry: Any, module: str, qualname: str) -> None:
        """Register `entry` as `name`; it must be defined in `<package>.<name>` (`module`, so
        that `names()`, which reads module names only, lists it). `qualname` tells a module
        imported again (same entry, fine) from two different entries under one name (an error)."""
        expected = f"{self.package}.{name}"
        if module != expected:
            raise ValueError(f"{self.kind} {name!r} must be defined in module {expected}, "
                             f"not {module}")
        known = self._qualnames.get(name)
        if known is not None and known != qualname:
            raise ValueError(f"{self.kind} {name!r} is registered twice: {known} and {qualname}")
        self._entries[name] = entry
        self._qualnames[name] = qualname

    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator: `cls` is the entry `name` (see `add_entry`). Sets `cls.name = name`."""
        def decorate(cls: Any) -> Any:
            self.add_entry(name, cls, cls.__module__, cls.__qualname__)
            cls.name = name
            return cls
        return decorate

    def get(self, name: str) -> Any:
        """The entry registered as `name` (imports its module). Raises ValueError naming the
        choices for an unknown name."""
        if name not in self.names():
            raise ValueError(f"unknown {self.kind} {name!r}; choose from {self.names()}")
        importlib.import_module(f"{self.package}.{name}")
        if name not in self._entries:
            raise ValueError(f"module {self.package}.{name} registers no {self.kind} {name!r}"
                             f"{self.registration_hint}")
        return self._entries[name]

    def summary(self, name: str) -> str:
        """The first sentence of entry `name`'s module docstring, read without importing it."""
        path = self._module_file(name)
        with open(path) as f:
            doc = ast.get_docstring(ast.parse(f.read())) or ""
        paragraph = " ".join(doc.split("\n\n")[0].split())
        # The first sentence: a period after a word, not after "et al", before a capital.
        sentence = re.split(r"(?<=\S)(?<! al)\.\s+(?=[A-Z])", paragraph)[0].rstrip(".")
        return sentence or f"(module {self.package}.{name} has no docstring)"

    def _module_file(self, name: str) -> str:
        if name not in self.names():
            raise ValueError(f"unknown {self.kind} {name!r}; choose from {self.names()}")
        for folder in self._folders():
            candidate = os.path.join(folder, f"{name}.py")
            if os.path.exists(candidate):
                return candidate
        raise ValueError(f"{self.kind} {name!r} is not a .py module of {self.package}")
