"""The `tfrec` command."""
import argparse
import os
import sys

# Quiet TensorFlow's C++ start-up logging (including the harmless "failed call to cuInit" on
# machines without a GPU) unless the user set a level; Python errors still surface.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tfrec  # noqa: E402  (selects Keras 2 before anything imports TensorFlow)
from tfrec.config import ConfigError, load_config, to_dict  # noqa: E402
from tfrec.data.fetch import DATASETS, fetch_movielens_100k  # noqa: E402
from tfrec.errors import user_error_message  # noqa: E402
from tfrec.pipeline.registry import STAGES  # noqa: E402  (names only: no stage imported)


def _positive_int(text: str) -> int:
    """argparse type of `recommend -k`: an int >= 1 (a negative k would slice from the end)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfrec", description=tfrec.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tfrec {tfrec.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a pipeline config (writes runs/<name>/)")
    run.add_argument("config", help="pipeline YAML, e.g. pipelines/movielens_100k.yaml")
    run.add_argument("--runs-dir", default="runs", help="parent folder of run folders")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set ranking.cross_fit_folds=0 "
                          "--set name=variant (repeatable; VALUE is YAML)")
    run.add_argument("--quiet", action="store_true",
                     help="print only errors (progress bars are also off when stdout is not a "
                          "terminal)")
    run.add_argument("--force", action="append", default=[], metavar="STAGE",
                     help="redo STAGE and every stage after it that depends on it, even if "
                          f"cached (repeatable); stages: {', '.join(STAGES.names())}")

    data = sub.add_parser("data", help="data commands")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = data_sub.add_parser("fetch", help="fetch a dataset into the cache (PyPI only)")
    fetch.add_argument("dataset", choices=DATASETS)
    fetch.add_argument("--cache-dir", default=None, help="default: $TFREC_CACHE or ~/.cache/tfrec")
    simulate = data_sub.add_parser(
        "simulate", help="write the event tables of a simulated YouTube-like world (Parquet)")
    simulate.add_argument("--preset", default="small",
                          help="tiny | small (10k videos, 5k users) | medium (~10M events) | large")
    simulate.add_argument("--out", required=True,
                          help="folder for the Parquet tables: new, empty, or a previous "
                               "simulation's (only its simulator files are replaced; any other "
                               "non-empty folder is refused)")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--users", type=int, default=None, help="override the preset's users")
    simulate.add_argument("--videos", type=int, default=None, help="override its videos")

    rec = sub.add_parser("recommend", help="a user's top-k from the exported SavedModels")
    rec.add_argument("--saved-models", default="saved_models")
    rec.add_argument("--user-id", required=True)
    rec.add_argument("-k", type=_positive_int, default=10,
                     help="how many to show (>= 1; at most the export's k, from its manifest)")
    rec.add_argument("--model", default="retrieval_brute_force",
                     choices=("retrieval_brute_force", "retrieval_scann"))
    rec.add_argument("--rerank", action="store_true",
                     help="re-rank the retrieved candidates by the exported ranker "
                          "(expected watch time)")
    rec.add_argument("--events", default=None,
                     help="event folder (default: the exporting run's, from the manifest)")

    config = sub.add_parser("config", help="config commands")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser("show", help="print a config with every default filled in")
    show.add_argument("config")

    versions = sub.add_parser("versions", help="the exported version sets (every servable of "
                              "a run at one version number)")
    versions_sub = versions.add_subparsers(dest="versions_command", required=True)
    listing = versions_sub.add_parser("list", help="the kept sets; * marks the one "
                                      "models.config serves")
    listing.add_argument("--saved-models", default="saved_models")
    use = versions_sub.add_parser("use", help="point models.config at an older complete set "
                                  "(roll back) or a newer one")
    use.add_argument("version", type=int)
    use.add_argument("--saved-models", default="saved_models")

    extensions = sub.add_parser("extensions", help="the extension points and their entries "
                                "(losses, tower and ranker features, stages) as markdown tables")
    extensions.add_argument("--write-readme", metavar="README", nargs="?", const="README.md",
                            help="rewrite the tables' block in README (default README.md)")
    return parser


def _extensions(args: argparse.Namespace) -> None:
    from tfrec.extension_points import markdown_tables, with_tables
    if args.write_readme is None:
        print(markdown_tables(), end="")
        return
    with open(args.write_readme) as f:
        text = f.read()
    with open(args.write_readme, "w") as f:
        f.write(with_tables(text))
    print(f"{args.write_readme}: extension tables rewritten")


def _versions(args: argparse.Namespace) -> None:
    from tfrec.serving import version_sets
    if args.versions_command == "use":
        path = version_sets.use_version(args.saved_models, args.version)
        print(f"{path} now serves version set {args.version}")
        return
    sets = version_sets.version_sets(args.saved_models)
    if not sets:
        raise version_sets.VersionSetError(f"{args.saved_models}: no published version set")
    try:
        served = version_sets.served_set(args.saved_models)["version"]
    except version_sets.VersionSetError:
        served = None
    for entry in sets:
        mark = "*" if entry["version"] == served else " "
        print(f"{mark} {entry['version']:>4}  {entry['published_at']}  run {entry['run']}: "
              f"{', '.join(entry['servables'])}")


def _simulate(args: argparse.Namespace) -> None:
    import time

    from tfrec.data.simulator import preset, simulate_to_parquet
    from tfrec.data.simulator.tables import output_folder_problem
    problem = output_folder_problem(args.out)  # before simulating, which can take minutes
    if problem:
        raise ConfigError(f"--out {args.out} {problem}")
    overrides = {k: v for k, v in (("num_users", args.users), ("num_videos", args.videos))
                 if v is not None}
    try:
        config = preset(args.preset, **overrides)
    except ValueError as err:
        raise ConfigError(f"tfrec data simulate: {err}") from err
    start = time.perf_counter()
    tty = sys.stderr.isatty()

    def progress(day: int, days: int) -> None:
        if tty:
            print(f"\rsimulating day {day}/{days}", end="" if day < days else "\n",
                  file=sys.stderr, flush=True)

    try:
        counts = simulate_to_parquet(config, args.out, seed=args.seed, progress=progress)
    except OSError as err:  # e.g. a parent of --out is a file, or the disk is read-only
        raise ConfigError(f"--out {args.out}: cannot write: {err.strerror or err}") from err
    events = counts["impressions"] + counts["watches"] + counts["searches"]
    print(f"{args.out}: {counts} ({events:,} events in {time.perf_counter() - start:.1f}s)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            # nothing starts before the config is known good
            config = load_config(args.config, args.set)
            from tfrec.pipeline import pipeline_stages, run_pipeline
            from tfrec.progress import progress_wanted
            from tfrec.stages import check_force
            check_force(pipeline_stages(), args.force)
            log = (lambda *a, **k: None) if args.quiet else (lambda m: print(m, flush=True))
            run_pipeline(config, runs_dir=args.runs_dir, log=log, force=tuple(args.force),
                         progress=progress_wanted(args.quiet))
        elif args.command == "recommend":
            from tfrec.serving.recommend import (format_recommendations, k_note, recommend,
                                                 rerank, titles)
            # With --rerank, the ranker re-orders all the retriever returns (its export k).
            recent, recs, manifest = recommend(args.saved_models, args.user_id,
                                               None if args.rerank else args.k, args.model,
                                               args.events)
            if args.rerank:
                recs = rerank(args.saved_models, args.events or manifest["events_dir"],
                              args.user_id, recs, args.k)
            note = k_note(args.k, manifest, len(recs))
            if note:
                print(f"tfrec: note: {note}", file=sys.stderr)
            names = titles(args.events or manifest["events_dir"])
            print(format_recommendations(args.user_id, recent, recs, names))
        elif args.command == "data" and args.data_command == "simulate":
            _simulate(args)
        elif args.command == "data":
            print(fetch_movielens_100k(args.cache_dir))
        elif args.command == "config":
            import yaml
            print(yaml.safe_dump(to_dict(load_config(args.config)), sort_keys=False), end="")
        elif args.command == "versions":
            _versions(args)
        elif args.command == "extensions":
            _extensions(args)
    except Exception as err:  # noqa: BLE001  (what a user can fix is one line; a bug re-raises)
        message = user_error_message(err)
        if message is None:
            raise
        print(f"tfrec: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
