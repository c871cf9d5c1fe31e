"""Ranking-example building speed: `build_ranking_examples` on ~1.5M impressions, against a plain
per-impression Python loop (the baseline) on a sample of the same impressions, in the same run; the
loop's output is checked to be identical.

Synthetic events: USERS users, VIDEOS videos in 2,000 channels and 50 topics, each user with
log-normal activity; pages of 10 impressions; clicks become watches.

Run: .venv/bin/python benchmarks/ranking_examples.py [--users 20000] [--out benchmarks/results]
"""
import argparse
import json
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import tfrec  # noqa: E402,F401
from tfrec.data.schema import EventTables  # noqa: E402
from tfrec.features.ordering import order_watches  # noqa: E402
from tfrec.features.ranking_examples import NEVER_SECONDS, build_ranking_examples  # noqa: E402


def synthetic_events(users, videos, pages_per_user, seed=0):
    rng = np.random.default_rng(seed)
    pages = np.maximum(1, rng.lognormal(np.log(pages_per_user) - 0.5, 1.0, users).astype(int))
    page_user = np.repeat(np.arange(users), pages)
    page_time = rng.integers(1_000_000_000, 1_010_000_000, len(page_user))
    n = 10 * len(page_user)
    clicked = (rng.random(n) < 0.1).astype(np.int64)
    imp = pd.DataFrame({
        "user_id": np.repeat(page_user, 10).astype(str).astype(object),
        "video_id": (rng.zipf(1.3, n) % videos).astype(str).astype(object),
        "timestamp": np.repeat(page_time, 10), "position": np.tile(np.arange(10), len(page_user)),
        "clicked": clicked, "watch_time": clicked * rng.random(n) * 600})
    watched = imp[imp["clicked"] == 1]
    vid = np.arange(videos)
    return EventTables(
        watches=watched[["user_id", "video_id", "timestamp", "watch_time"]].reset_index(drop=True),
        impressions=imp,
        users=pd.DataFrame({"user_id": np.arange(users).astype(str).astype(object),
                            "language": rng.choice(["en", "fr", "de"], users).astype(object)}),
        videos=pd.DataFrame({"video_id": vid.astype(str).astype(object),
                             "channel": (vid % 2000).astype(str).astype(object),
                             "topic": (vid % 50).astype(str).astype(object),
                             "language": rng.choice(["en", "fr", "de"], videos).astype(object),
                             "upload_timestamp": rng.integers(900_000_000, 1_000_000_000,
                                                              videos)}))


def naive(events, rows, max_history):
    """The same features by a loop over impressions (the obvious implementation)."""
    watches = order_watches(events.watches)
    channel = events.videos.set_index("video_id")["channel"]
    by_user = {u: g for u, g in watches.groupby("user_id")}
    imp_by_user = {u: g for u, g in events.impressions.groupby("user_id")}
    out = []
    for _, r in rows.iterrows():
        w = by_user.get(r.user_id, watches.iloc[:0])
        before = w[w["timestamp"] < r.timestamp]
        hist = before["video_id"].tolist()[::-1][:max_history]
        same = before[before["video_id"].map(channel) == channel[r.video_id]]
        since = r.timestamp - same["timestamp"].max() if len(same) else NEVER_SECONDS
        i = imp_by_user[r.user_id]
        prev = int(((i["video_id"] == r.video_id) & (i["timestamp"] < r.timestamp)).sum())
        out.append((hist, float(since), float(prev)))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--videos", type=int, default=100000)
    parser.add_argument("--pages-per-user", type=int, default=12)
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    events = synthetic_events(args.users, args.videos, args.pages_per_user).validated()
    start = time.perf_counter()
    examples = build_ranking_examples(events, max_history=50)
    seconds = time.perf_counter() - start
    n = len(examples)
    rows = np.random.default_rng(1).choice(n, args.sample, replace=False)
    sample = pd.DataFrame({c: np.asarray(examples[c])[rows]
                           for c in ("user_id", "video_id", "timestamp")})
    start = time.perf_counter()
    reference = naive(events, sample, 50)
    naive_seconds = time.perf_counter() - start
    for k, (hist, since, prev) in zip(rows, reference):
        assert list(examples["watch_history"].row(k)) == hist
        assert examples["seconds_since_channel_watch"][k] == since
        assert examples["previous_impressions"][k] == prev
    result = {"impressions": n, "watches": len(events.watches), "users": args.users,
              "videos": args.videos, "seconds": round(seconds, 2),
              "impressions_per_second": round(n / seconds),
              "naive_sample": args.sample, "naive_seconds": round(naive_seconds, 2),
              "naive_impressions_per_second": round(args.sample / naive_seconds, 1),
              "speedup_vs_naive": round((n / seconds) / (args.sample / naive_seconds), 1),
              "naive_output_identical": True, "machine": platform.platform(),
              "threads": os.environ.get("OMP_NUM_THREADS")}
    print(json.dumps(result, indent=2))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "ranking_examples.json"), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
