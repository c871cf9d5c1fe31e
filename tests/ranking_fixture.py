"""A small simulated world with impressions and the true expected watch time of each one.

Each video has a click appeal a_v and a watch-time mean m_v drawn so that they are opposed
(clickbait: appealing videos are watched briefly). A user clicks an impression with probability
sigmoid(a_v + 1.0 * [user language == video language] - 3), and a click is watched for a
gamma(shape 4) time of mean m_v seconds. The true expected watch time of an impression is
P(click) * m_v, stored in `true_expected_watch_time`.
"""
import numpy as np
import pandas as pd

from tfrec.data.schema import EventTables, coerce_table


def simulated_world(n_users=200, n_videos=60, pages_per_user=30, page_size=10, seed=0,
                    languages=("en", "fr")):
    rng = np.random.default_rng(seed)
    appeal = rng.normal(0.0, 1.0, n_videos)
    mean_watch = np.exp(4.0 - 0.8 * appeal + 0.3 * rng.normal(size=n_videos))  # clickbait
    video_lang = rng.choice(languages, n_videos)
    user_lang = rng.choice(languages, n_users)
    users = np.array([f"u{i}" for i in range(n_users)], dtype=object)
    videos = np.array([f"v{i}" for i in range(n_videos)], dtype=object)
    rows = []
    for p in range(pages_per_user):
        t = 1000 + 100 * p + rng.integers(0, 50, n_users)
        shown = np.argsort(rng.random((n_users, n_videos)), axis=1)[:, :page_size]
        rows.append((np.repeat(np.arange(n_users), page_size), shown.reshape(-1),
                     np.repeat(t, page_size), np.tile(np.arange(page_size), n_users)))
    u, v, t, pos = (np.concatenate(c) for c in zip(*rows))
    logit = appeal[v] + 1.0 * (user_lang[u] == video_lang[v]) - 3.0
    p_click = 1.0 / (1.0 + np.exp(-logit))
    clicked = (rng.random(len(u)) < p_click).astype(np.int64)
    watch = np.where(clicked == 1, rng.gamma(4.0, mean_watch[v] / 4.0), 0.0)
    impressions = pd.DataFrame({
        "user_id": users[u], "video_id": videos[v], "timestamp": t.astype(np.int64),
        "position": pos.astype(np.int64), "clicked": clicked, "watch_time": watch,
        "true_expected_watch_time": p_click * mean_watch[v],
        "true_click_probability": p_click})
    watched = impressions[impressions["clicked"] == 1]
    tables = dict(
        watches=coerce_table(watched[["user_id", "video_id", "timestamp", "watch_time"]]
                             .reset_index(drop=True), "watches", "watches"),
        users=coerce_table(pd.DataFrame({"user_id": users, "language": user_lang}), "users",
                           "users"),
        videos=coerce_table(pd.DataFrame({
            "video_id": videos, "language": video_lang,
            "channel": [f"c{i % 7}" for i in range(n_videos)],
            "upload_timestamp": rng.integers(0, 900, n_videos)}), "videos", "videos"),
        impressions=impressions)
    return EventTables(**tables).validated()
