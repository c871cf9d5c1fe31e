"""tfrec's extension points and their entries, as the README's tables (`tfrec extensions`).

Each extension point is a `tfrec.registry.Registry`: a package with one module per entry, named
as in the config key that picks it. The tables below are generated from the registries (names
from the package folders, each entry's one-line summary from its module docstring), so the
README cannot drift from the code: `tests/test_extension_points.py` checks the README's copy.
Imports no TensorFlow.
"""
import dataclasses
import importlib

from tfrec.registry import Registry


@dataclasses.dataclass(frozen=True)
class ExtensionPoint:
    """One registry, the config key that chooses among its entries and the folder to add to."""

    title: str
    config_key: str
    registry_module: str  # module that defines the registry (imported lazily: cheap, TF-free)
    registry_name: str

    @property
    def registry(self) -> Registry:
        registry = getattr(importlib.import_module(self.registry_module), self.registry_name)
        assert isinstance(registry, Registry)
        return registry

    @property
    def folder(self) -> str:
        return self.registry.package.replace(".", "/") + "/"


EXTENSION_POINTS = (
    ExtensionPoint("Softmax losses", "candidate_generation.softmax.loss",
                   "tfrec.losses.registry", "LOSSES"),
    ExtensionPoint("Label-probability sources (the logQ term of in-batch negatives)",
                   "candidate_generation.softmax.label_probability",
                   "tfrec.losses.registry", "LABEL_PROBABILITIES"),
    ExtensionPoint("Ranker features", "ranking.model.features",
                   "tfrec.features.ranker", "RANKER_FEATURES"),
)


def _summary(registry: Registry, name: str) -> str:
    """The entry's one-line summary without a leading "<name>: " and with | escaped."""
    text = registry.summary(name)
    if text.startswith(f"{name}: "):
        text = text[len(name) + 2:]
    return (text[:1].upper() + text[1:]).replace("|", "\\|")


def markdown_tables() -> str:
    """One markdown table per extension point: | name | what it is |."""
    parts = []
    for point in EXTENSION_POINTS:
        registry = point.registry
        lines = [f"**{point.title}**: `{point.config_key}`, one module per entry in "
                 f"`{point.folder}`", "", "| name | what it is |", "|---|---|"]
        lines += [f"| `{name}` | {_summary(registry, name)} |" for name in registry.names()]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
