"""Publishing servables as one version set, so TF Serving never serves models of two runs at once.

Every servable of a run (user_tower, retrieval_brute_force, retrieval_scann, ranker) gets the same
version number N, and `models.config` lists each one pinned to N
(`model_version_policy { specific { versions: N } }`): TF Serving's default policy loads each
model's latest version on its own, which would pair a new user tower with an old retrieval model
while a set is half written. Layout of the saved_models folder:

  <name>/<N>/           the servables of set N (SavedModel, assets.extra/, manifest.json)
  version_sets.json     the complete sets, oldest first (the commit record)
  models.config         TF Serving --model_config_file: one complete set, each model pinned
  .publishing.json      only while a set is being published: the journal naming it
  .lock                 flock taken by whoever publishes, recovers or switches sets

Publishing N: take the lock; roll back whatever set a crash left half published; write the
journal; copy each servable to <name>/.publishing-N-* and rename it to <name>/N; add N to
version_sets.json (the commit point: atomic replace); remove the journal; point models.config at
N; delete the sets beyond the newest `keep`. After a kill -9 at any point either N is recorded in
version_sets.json and complete, or it is not and the next publish (or `recover`) deletes every
folder of it; models.config always names a complete set.

Rolling back: `use_version(base_dir, M)` (`tfrec versions use M`) points models.config at an
older complete set; TF Serving polls the file (--model_config_file_poll_wait_seconds) or reloads
it on restart.
"""
import contextlib
import datetime
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from tfrec.errors import TfrecError

JOURNAL = ".publishing.json"
SETS = "version_sets.json"
MODELS_CONFIG = "models.config"
LOCK = ".lock"


class VersionSetError(TfrecError, ValueError):
    """A version set that does not exist or is not complete."""


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _read_json(path: str, default: Any) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


@contextlib.contextmanager
def _locked(base_dir: str) -> Iterator[None]:
    """Exclusive flock on <base_dir>/.lock (released when the process dies, so never stale)."""
    os.makedirs(base_dir, exist_ok=True)
    with open(os.path.join(base_dir, LOCK), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def version_sets(base_dir: str) -> list[dict[str, Any]]:
    """The complete sets, oldest first: [{"version", "servables", "published_at", "run"}]."""
    return _read_json(os.path.join(base_dir, SETS), {"sets": []})["sets"]


def _versions_on_disk(base_dir: str) -> set[int]:
    """Every integer version folder under any model folder of `base_dir`."""
    found: set[int] = set()
    for name in os.listdir(base_dir):
        folder = os.path.join(base_dir, name)
        if os.path.isdir(folder) and not name.startswith("."):
            found.update(int(d) for d in os.listdir(folder) if d.isdigit())
    return found


def _remove_set_folders(base_dir: str, version: int, names: Iterable[str]) -> None:
    for name in names:
        folder = os.path.join(base_dir, name)
        shutil.rmtree(os.path.join(folder, str(version)), ignore_errors=True)
        if os.path.isdir(folder):
            for d in os.listdir(folder):
                if d.startswith(f".publishing-{version}-"):
                    shutil.rmtree(os.path.join(folder, d), ignore_errors=True)


def _recover_locked(base_dir: str) -> dict[str, Any] | None:
    journal = _read_json(os.path.join(base_dir, JOURNAL), None)
    if journal is None:
        return None
    version = journal["version"]
    committed = [s for s in version_sets(base_dir) if s["version"] == version]
    if committed:  # a crash after the commit: finish the publish
        _point_models_config(base_dir, committed[0])
    else:  # a crash before the commit: the set never existed
        _remove_set_folders(base_dir, version, journal["servables"])
    os.remove(os.path.join(base_dir, JOURNAL))
    return {"version": version, "rolled_back": not committed}


def recover(base_dir: str) -> dict[str, Any] | None:
    """Finish or undo a publish a crash interrupted. Returns None when there was none, else
    {"version", "rolled_back"}: a set not yet committed is deleted, a committed one is served."""
    if not os.path.isdir(base_dir):
        return None
    with _locked(base_dir):
        return _recover_locked(base_dir)


def pending(base_dir: str) -> bool:
    """True while a publish is under way or was interrupted (its journal exists)."""
    return os.path.exists(os.path.join(base_dir, JOURNAL))


def _link_or_copy(src: str, dst: str) -> None:
    """Hard link when the two folders share a file system (no bytes copied), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _place(src: str, model_dir: str, version: int, manifest: Mapping[str, Any]) -> str:
    """Copy servable folder `src` to <model_dir>/<version> (via a hidden name, then rename),
    with its manifest.json rewritten to include `manifest`."""
    tmp = os.path.join(model_dir, f".publishing-{version}-{uuid.uuid4().hex[:8]}")
    shutil.copytree(src, tmp, copy_function=_link_or_copy)
    manifest_path = os.path.join(tmp, "manifest.json")
    staged = _read_json(manifest_path, {})
    if os.path.exists(manifest_path):
        os.remove(manifest_path)  # a hard link: never write through it into the staged copy
    with open(manifest_path, "w") as f:
        json.dump({**staged, **manifest}, f, indent=2)
    final = os.path.join(model_dir, str(version))
    os.rename(tmp, final)
    return final


def models_config_text(base_dir: str, names: Iterable[str], version: int) -> str:
    """A TF Serving model_config_list serving `names`, each pinned to `version`."""
    entries = "".join(
        f'  config {{\n    name: "{n}"\n    base_path: "{os.path.join(base_dir, n)}"\n'
        f'    model_platform: "tensorflow"\n'
        f'    model_version_policy {{ specific {{ versions: {version} }} }}\n  }}\n'
        for n in names)
    return "model_config_list {\n" + entries + "}\n"


def _point_models_config(base_dir: str, entry: Mapping[str, Any]) -> str:
    path = os.path.join(base_dir, MODELS_CONFIG)
    _write_atomic(path, models_config_text(base_dir, entry["servables"], entry["version"]))
    return path


def publish(base_dir: str, staged: Mapping[str, str], keep: int = 3, run: str | None = None,
            log: Callable[[str], object] = print, carry_over: bool = False) -> dict[str, Any]:
    """Publish servable folders as one new version set and point models.config at it.

    Args:
      base_dir: the saved_models folder.
      staged: {model name: folder holding that servable's SavedModel and manifest.json}.
      keep: complete sets to keep (the newest); older ones are deleted.
      run: the run's name, recorded with the set.
      carry_over: the new set also takes, unchanged, the served set's servables that `staged`
        does not replace (updating one servable of a deployment); off, the set is `staged`.
    Returns:
      {"version": N, "paths": {name: <base_dir>/<name>/<N>}, "models_config": its path}.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    base_dir = os.path.abspath(base_dir)
    with _locked(base_dir):
        recovered = _recover_locked(base_dir)
        if recovered and recovered["rolled_back"]:
            log(f"  removed the half-published version set {recovered['version']} "
                "an interrupted run left")
        if carry_over and os.path.exists(os.path.join(base_dir, SETS)):
            try:
                served = served_set(base_dir)
            except VersionSetError:
                served = {"servables": []}
            staged = {**{n: os.path.join(base_dir, n, str(served["version"]))
                         for n in served["servables"]}, **staged}
        names = sorted(staged)
        version = max(_versions_on_disk(base_dir) |
                      {s["version"] for s in version_sets(base_dir)}, default=0) + 1
        _write_atomic(os.path.join(base_dir, JOURNAL),
                      json.dumps({"version": version, "servables": names}))
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        set_facts = {"version": version, "version_set": names, "published_at": now}
        paths: dict[str, str] = {}
        for name in names:
            paths[name] = _place(staged[name], os.path.join(base_dir, name), version,
                                 {"name": name, **set_facts})
        entry = {"version": version, "servables": names, "published_at": now, "run": run}
        sets = version_sets(base_dir) + [entry]
        # The commit: the new set recorded, the oldest beyond `keep` dropped from the record
        # (their folders go below; a crash before that leaves only unlisted, unserved folders).
        _write_atomic(os.path.join(base_dir, SETS), json.dumps({"sets": sets[-keep:]}, indent=2))
        os.remove(os.path.join(base_dir, JOURNAL))
        config_path = _point_models_config(base_dir, entry)
        for old in sets[:-keep]:
            _remove_set_folders(base_dir, old["version"], old["servables"])
    return {"version": version, "paths": paths, "models_config": config_path}


def served_set(base_dir: str) -> dict[str, Any]:
    """The set models.config serves: {"version", "servables", ...}; VersionSetError if none."""
    base_dir = os.path.abspath(base_dir)
    sets = version_sets(base_dir)
    try:
        with open(os.path.join(base_dir, MODELS_CONFIG)) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    pinned = {int(v) for v in re.findall(r"versions: (\d+) ", text)}
    for entry in reversed(sets):
        if entry["version"] in pinned:
            return entry
    raise VersionSetError(f"{base_dir}: no published version set (run `tfrec run` with export "
                          "enabled first)")


def served_path(base_dir: str, name: str) -> str:
    """<base_dir>/<name>/<N> of the served set; VersionSetError if that set lacks `name`."""
    entry = served_set(base_dir)
    if name not in entry["servables"]:
        raise VersionSetError(f"{base_dir}: the served version set {entry['version']} has no "
                              f"'{name}' (it has {entry['servables']})")
    return os.path.join(os.path.abspath(base_dir), name, str(entry["version"]))


def use_version(base_dir: str, version: int) -> str:
    """Point models.config at complete set `version` (e.g. to roll back). Returns its path."""
    base_dir = os.path.abspath(base_dir)
    with _locked(base_dir):
        sets = {s["version"]: s for s in version_sets(base_dir)}
        if version not in sets:
            raise VersionSetError(f"{base_dir}: no complete version set {version} (kept: "
                                  f"{sorted(sets)})")
        missing = [n for n in sets[version]["servables"]
                   if not os.path.isdir(os.path.join(base_dir, n, str(version)))]
        if missing:
            raise VersionSetError(f"{base_dir}: version set {version} is missing {missing}")
        return _point_models_config(base_dir, sets[version])
