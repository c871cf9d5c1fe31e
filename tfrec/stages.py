"""Pipeline stages whose outputs are cached under runs/<name>/<stage>/ and keyed by their inputs.

A `Stage` says what it reads (upstream stages, config sections) and gives two functions:

  run(ctx)  -> metrics: computes, writes its files into `ctx.out` and returns its metrics
               sections (e.g. {"data": {...}}), which go into metrics.json;
  load(ctx) -> value:   reads those files back, the value downstream stages get as
               `ctx.inputs[name]` (also called right after `run`, so both paths are the same).

The cache key of a stage is a sha256 over its name, its code version (`tfrec.__version__` and the
stage's own `version`), the config sections it reads and the keys of the stages it depends on.
A changed section therefore reruns that stage and everything downstream, nothing else. The code is
versioned by hand rather than by hashing source files: hashing sources would throw away a
20-second training run for a comment edit, while a version number is bumped exactly when a change
alters what a stage writes (bump `Stage.version` then; the package version covers releases).

Outputs appear atomically: a stage writes into a hidden temporary folder, adds `stage.json` (key,
metrics, seconds) last, and the folder is renamed into place; a crash leaves no half-written stage.
"""
import dataclasses
import difflib
import functools
import hashlib
import json
import math
import os
import shutil
import time
import typing
import uuid

import pydantic

import tfrec
from tfrec.config import ConfigError, PipelineConfig, to_dict

MARKER = "stage.json"


class LazyInputs(dict[str, typing.Any]):
    """{stage name: value}, each value loaded from disk on first use: a rerun that finds every
    stage cached loads nothing (no model is rebuilt just to be skipped)."""

    def __init__(self) -> None:
        super().__init__()
        self._loaders: dict[str, typing.Callable[[], typing.Any]] = {}

    def add(self, name: str, load: typing.Callable[[], typing.Any]) -> None:
        self._loaders[name] = load

    def __contains__(self, name: object) -> bool:
        return name in self._loaders

    def __getitem__(self, name: str) -> typing.Any:
        if not dict.__contains__(self, name):
            dict.__setitem__(self, name, self._loaders[name]())
        return dict.__getitem__(self, name)

    def subset(self, names: typing.Iterable[str]) -> "LazyInputs":
        out = LazyInputs()
        out._loaders = {n: functools.partial(self.__getitem__, n) for n in names}
        return out


@dataclasses.dataclass
class StageContext:
    """What a stage function sees.

    Attributes:
      config: the PipelineConfig.
      run_dir: runs/<name>/ (for files that live beside the stages: checkpoints/, tensorboard/).
      out: the stage's own folder (a temporary one while `run` writes into it).
      key: the stage's cache key (hex).
      inputs: {upstream stage name: its value} (LazyInputs: loaded when first read).
      metrics: the run's metrics so far (sections of finished stages).
      log: callable(str) for progress lines; progress: whether to draw progress bars.
      forced: the stage runs because of --force (so it must not resume earlier partial work).
    """

    config: PipelineConfig
    run_dir: str
    out: str
    key: str
    inputs: dict[str, typing.Any]
    metrics: dict[str, typing.Any]
    log: typing.Callable[[str], None] = print
    progress: bool = False
    forced: bool = False

    def path(self, *parts: str) -> str:
        """A path inside the stage's folder."""
        return os.path.join(self.out, *parts)

    def run_path(self, *parts: str) -> str:
        """A path inside the run folder."""
        return os.path.join(self.run_dir, *parts)


@dataclasses.dataclass(frozen=True)
class Stage:
    """One cached step of the pipeline.

    Args:
      name: folder name under runs/<name>/ and the name `--force` takes.
      run: callable(StageContext) -> dict of metrics sections.
      load: callable(StageContext) -> the value downstream stages receive.
      depends_on: names of upstream stages (their values are in ctx.inputs).
      optional_depends_on: upstream stages used when they are enabled (then in ctx.inputs and
        in the key), not needed otherwise.
      config_sections: dotted PipelineConfig attributes hashed into the key, e.g. "examples".
      version: bump when the stage's code changes its outputs (invalidates old caches).
      enabled: callable(config) -> bool; disabled stages are skipped (and so is what needs them).
      check: optional callable(StageContext), raising OSError/ValueError/KeyError when cached
        outputs can no longer be used (e.g. exported versions deleted): the stage runs again.
      input_files: optional callable(config) -> JSON-able fingerprint of the files outside the
        run the stage reads (hashed into its key, so editing them in place reruns it).
      rank: where the stage goes in the pipeline's run order among the stages free to go next
        (lower first; `tfrec.pipeline.registry.run_order`); not part of the key.
    """

    name: str
    run: typing.Callable[[StageContext], dict[str, typing.Any] | None]
    load: typing.Callable[[StageContext], typing.Any]
    depends_on: tuple[str, ...] = ()
    optional_depends_on: tuple[str, ...] = ()
    config_sections: tuple[str, ...] = ()
    version: int = 1
    enabled: typing.Callable[[PipelineConfig], bool] = lambda config: True
    check: typing.Callable[[StageContext], typing.Any] | None = None
    input_files: typing.Callable[[PipelineConfig], typing.Any] | None = None
    rank: int = 100


def json_safe(value: typing.Any) -> typing.Any:
    """`value` with every NaN or infinite float replaced by None: JSON has no NaN, and a NaN
    literal in metrics.json breaks strict readers (and looks like a figure)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json_atomic(path: str, data: typing.Any) -> None:
    """json.dump (non-finite floats as null) to a temporary file, then os.replace: readers never
    see half a file."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "w") as f:
            json.dump(json_safe(data), f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def replace_dir(tmp: str, final: str) -> None:
    """Move folder `tmp` to `final`, replacing what was there (a folder cannot be os.replace'd
    onto a non-empty one: the old one is renamed away first, then deleted)."""
    old = None
    if os.path.exists(final):
        old = f"{final}.old-{uuid.uuid4().hex[:8]}"
        os.rename(final, old)
    os.rename(tmp, final)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _section(config: PipelineConfig, dotted: str) -> typing.Any:
    value: typing.Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return to_dict(value) if isinstance(value, pydantic.BaseModel) else value


def stage_key(stage: Stage, config: PipelineConfig, upstream_keys: dict[str, str]) -> str:
    """sha256 hex of everything a stage's outputs depend on."""
    upstream = stage.depends_on + tuple(n for n in stage.optional_depends_on
                                        if n in upstream_keys)
    spec: dict[str, typing.Any] = {
            "stage": stage.name, "tfrec": tfrec.__version__, "version": stage.version,
            "config": {s: _section(config, s) for s in stage.config_sections},
            "upstream": {name: upstream_keys[name] for name in upstream}}
    if stage.input_files is not None:
        spec["input_files"] = stage.input_files(config)
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint_files(folder: str) -> list[list[typing.Any]]:
    """[[relative path, size, mtime_ns, sha256]] of every file under `folder`, sorted; [] when it
    does not exist. Content, not only the name, decides whether a cached stage is still valid."""
    rows: list[list[typing.Any]] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            stat = os.stat(path)
            rows.append([os.path.relpath(path, folder), stat.st_size, stat.st_mtime_ns,
                         digest.hexdigest()])
    return rows


def downstream_of(stages: typing.Sequence[Stage], names: typing.Iterable[str]) -> set[str]:
    """`names` and every stage that depends on one of them, directly or not."""
    out = set(names)
    for stage in stages:  # stages are in dependency order
        if out.intersection(stage.depends_on + stage.optional_depends_on):
            out.add(stage.name)
    return out


def check_force(stages: typing.Sequence[Stage], force: typing.Iterable[str]) -> None:
    """ConfigError for a --force name that is not a stage (naming the nearest one)."""
    names = [s.name for s in stages]
    for name in force:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"--force: unknown stage '{name}'{hint} (stages: {names})")


def _read_marker(folder: str) -> dict[str, typing.Any] | None:
    try:
        with open(os.path.join(folder, MARKER)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_marker(run_dir: str, name: str) -> dict[str, typing.Any] | None:
    """The stage.json of stage `name` in `run_dir` (its key, metrics, seconds), or None when the
    stage has not finished there."""
    return _read_marker(os.path.join(run_dir, name))


def stale_stages(stages: typing.Sequence[Stage], config: PipelineConfig, run_dir: str,
                 name: str) -> list[str]:
    """Stage `name` and those upstream of it whose stage.json in `run_dir` holds another key
    than the one `config` gives them (their outputs were made for another config or code
    version), upstream first; [] when every one is current.

    A stage without stage.json is not listed (it has not finished, or its folder was deleted:
    its key is still computed from `config`). The key of a stage that fingerprints files outside
    the run (`input_files`: the events) is taken from its stage.json, as recomputing it would
    read the data; when that is missing, nothing downstream of it can be checked.
    """
    by_name = {s.name: s for s in stages}
    keys: dict[str, str | None] = {}
    stale: list[str] = []

    def visit(stage_name: str) -> str | None:
        """The key `config` gives the stage (None: cannot be known)."""
        if stage_name in keys:
            return keys[stage_name]
        stage = by_name[stage_name]
        upstream = stage.depends_on + tuple(n for n in stage.optional_depends_on
                                            if by_name[n].enabled(config))
        upstream_keys = {n: visit(n) for n in upstream}
        marker = read_marker(run_dir, stage_name)
        recorded = marker.get("key") if marker else None
        if stage.input_files is not None:
            key = recorded
        elif None in upstream_keys.values():
            key = None
        else:
            key = stage_key(stage, config, {n: k for n, k in upstream_keys.items() if k})
        if None not in (recorded, key) and recorded != key:
            stale.append(stage_name)
        keys[stage_name] = key
        return key

    visit(name)
    return stale


def _remove_stale_temporaries(run_dir: str) -> None:
    """Delete the temporary folders of stages a killed run left (the caller holds the run's
    lock, so no other run is writing them)."""
    for name in os.listdir(run_dir):
        path = os.path.join(run_dir, name)
        if ".tmp-" in name or ".old-" in name:  # see run_stages, replace_dir, write_json_atomic
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)


def run_stages(stages: typing.Sequence[Stage], config: PipelineConfig, run_dir: str,
               force: typing.Iterable[str] = (), log: typing.Callable[[str], None] = print,
               progress: bool = False,
               after_each: typing.Callable[[dict, dict], None] | None = None
               ) -> tuple[LazyInputs, dict[str, typing.Any], dict[str, typing.Any]]:
    """Run or load every enabled stage in order.

    after_each: callable(metrics, report) after every stage (e.g. to save metrics.json as it grows).

    Returns:
      (values {name: value} loaded on first use, metrics {section: ...},
      report {name: {"key", "cached",
      "seconds" (this run's wall time), "compute_seconds" (when the outputs were made)}}).
    """
    check_force(stages, force)
    forced = downstream_of(stages, force)
    values = LazyInputs()
    keys: dict[str, str] = {}
    metrics: dict[str, typing.Any] = {}
    report: dict[str, typing.Any] = {}
    _remove_stale_temporaries(run_dir)
    for stage in stages:
        if not stage.enabled(config) or any(d not in values for d in stage.depends_on):
            continue
        start = time.perf_counter()
        key = stage_key(stage, config, keys)
        final = os.path.join(run_dir, stage.name)
        upstream = stage.depends_on + tuple(n for n in stage.optional_depends_on if n in values)
        ctx = StageContext(config, run_dir, final, key, values.subset(upstream),
                           metrics, log, progress, forced=stage.name in forced)
        marker: dict[str, typing.Any] | None = (None if stage.name in forced
                                                 else _read_marker(final))
        if marker is not None and marker.get("key") == key:
            try:
                if stage.check is not None:
                    stage.check(ctx)
            except (OSError, ValueError, KeyError) as err:
                log(f"[{stage.name}] cached outputs unreadable ({err}); running it again")
                marker = None
        else:
            marker = None
        cached = marker is not None
        if marker is not None:
            seconds = time.perf_counter() - start
            log(f"[{stage.name}] cached (hash {key[:8]}, made in {marker['seconds']:.1f}s)")
        else:
            log(f"[{stage.name}] running (hash {key[:8]})")
            tmp = os.path.join(run_dir, f".{stage.name}.tmp-{uuid.uuid4().hex[:8]}")
            os.makedirs(tmp)
            try:
                ctx.out = tmp
                stage_metrics = stage.run(ctx) or {}
                marker = {"stage": stage.name, "key": key, "seconds": round(
                    time.perf_counter() - start, 3), "metrics": stage_metrics}
                write_json_atomic(os.path.join(tmp, MARKER), marker)
                replace_dir(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            ctx.out = final
            seconds = time.perf_counter() - start
            log(f"[{stage.name}] done in {seconds:.1f}s")
        # Downstream stages get the value as `load` reads it back from disk, whether the stage
        # ran now or earlier: one path, so a cached run cannot differ from a fresh one.
        values.add(stage.name, functools.partial(stage.load, ctx))
        keys[stage.name] = key
        metrics.update(marker["metrics"])
        report[stage.name] = {"key": key, "cached": cached, "seconds": round(seconds, 3),
                              "compute_seconds": marker["seconds"]}
        if after_each is not None:
            after_each(metrics, report)
    return values, metrics, report
