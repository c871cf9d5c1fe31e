"""What users do in the simulated world, one day at a time (vectorised over that day's sessions).

A session of user u at time t:
  1. with probability search_probability, a search at t - 120 s: a topic drawn from u's tastes
     (10% a random topic), 1-3 of that topic's tokens; then 1..search_watches watches of videos of
     that topic at t - 100, t - 80, ... (these come from search results, which are not logged as
     impressions);
  2. a home page at t: page_size slots, each filled from popular (sampled by popularity at that
     day), fresh (uploaded in the last fresh_days, uniform) or personal (best of 3 uploaded
     videos of one of u's topics) candidates; a video appears at most once on a page;
  3. each slot is clicked with its true click probability; a click is a watch at t + 30 s * p.

`simulate_day` returns a DayLogs of index arrays; `tables.py` turns them into event tables.
"""
import dataclasses
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from tfrec.data.simulator.world import DAY, World, topic_tokens

SEARCH_LEAD_S = 120   # the search comes this long before the home page
SEARCH_WATCH_GAP_S = 20
CLICK_GAP_S = 30


@dataclasses.dataclass
class DayLogs:
    """Logs of one day (or several, concatenated). All arrays are aligned within their table.

    impressions: imp_user, imp_video, imp_time (int64 s), imp_position (1-based), imp_clicked,
                 imp_watch_time (s), imp_click_probability, imp_expected_watch_time (truth)
    watches:     watch_user, watch_video, watch_time (timestamp, s), watch_seconds
    searches:    search_user, search_time, search_query (object array of str)
    """

    imp_user: np.ndarray
    imp_video: np.ndarray
    imp_time: np.ndarray
    imp_position: np.ndarray
    imp_clicked: np.ndarray
    imp_watch_time: np.ndarray
    imp_click_probability: np.ndarray
    imp_expected_watch_time: np.ndarray
    watch_user: np.ndarray
    watch_video: np.ndarray
    watch_time: np.ndarray
    watch_seconds: np.ndarray
    search_user: np.ndarray
    search_time: np.ndarray
    search_query: np.ndarray

    @classmethod
    def concatenate(cls, parts: Sequence["DayLogs"]) -> "DayLogs":
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                      for f in dataclasses.fields(cls)})

    def num_events(self) -> int:
        return len(self.imp_user) + len(self.watch_user) + len(self.search_user)


def schedule_sessions(world: World) -> tuple[np.ndarray, np.ndarray]:
    """All sessions of the period: (user [S], time [S]) sorted by time."""
    c = world.config
    rng = np.random.default_rng(np.random.SeedSequence([world.seed, 1]))
    counts = rng.poisson(world.activity)
    users = np.repeat(np.arange(c.num_users), counts)
    times = world.start + SEARCH_LEAD_S + rng.integers(0, c.days * DAY - 2 * SEARCH_LEAD_S,
                                                       size=len(users))
    order = np.argsort(times, kind="stable")
    return users[order], times[order].astype(np.int64)


class CandidateSources:
    """The three candidate sources of a home page, for sessions of one day."""

    def __init__(self, world: World, index: "CorpusIndex", day: int) -> None:
        self.world = world
        w, c = world, world.config
        day_start = w.start + day * DAY
        # Popular: videos uploaded before the day starts, by popularity at midday.
        weights = w.base_popularity * w.popularity_curve(day_start + DAY // 2 - w.upload)
        weights[w.upload > day_start] = 0.0
        self.popular_cdf = np.cumsum(weights)
        self.index = index  # fresh and personal draws use the corpus sorted by upload time
        self.fresh_seconds = int(c.fresh_days * DAY)

    def popular(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.popular_cdf[-1] <= 0:  # nothing uploaded yet: any video
            return rng.integers(0, len(self.popular_cdf), size=n)
        draws = rng.random(n) * self.popular_cdf[-1]
        return np.minimum(np.searchsorted(self.popular_cdf, draws, side="right"),
                          len(self.popular_cdf) - 1)

    def fresh(self, rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
        lo = np.searchsorted(self.index.upload_sorted, times - self.fresh_seconds, side="left")
        hi = np.searchsorted(self.index.upload_sorted, times, side="right")
        out = self.popular(rng, len(times))
        ok = hi > lo
        pick = lo[ok] + (rng.random(int(ok.sum())) * (hi[ok] - lo[ok])).astype(np.int64)
        out[ok] = self.index.by_upload[pick]
        return out

    def personal(self, rng: np.random.Generator, users: np.ndarray, times: np.ndarray,
                 topics: np.ndarray | None = None, tries: int = 3) -> np.ndarray:
        """Best of `tries` uploaded videos of one of the user's topics (by true affinity)."""
        w = self.world
        if topics is None:
            topics = user_topic_draw(w, rng, users)
        lo = self.index.topic_start[topics]
        hi = np.searchsorted(self.index.topic_keys, topics * _KEY_SCALE + (times - _KEY_ORIGIN),
                             side="right")
        out = self.popular(rng, len(users))
        ok = hi > lo
        n = int(ok.sum())
        picks = lo[ok, None] + (rng.random((n, tries)) * (hi - lo)[ok, None]).astype(np.int64)
        candidates = self.index.topic_order[picks]
        scores = w.affinity(np.repeat(users[ok], tries), candidates.ravel()).reshape(n, tries)
        out[ok] = candidates[np.arange(n), np.argmax(scores, axis=1)]
        return out


# Sort key of (topic, upload time): topic * 2^40 + (upload - origin); uploads fit in 2^40 s.
_KEY_SCALE = np.int64(1) << 40
_KEY_ORIGIN = np.int64(1_000_000_000)


@dataclasses.dataclass
class CorpusIndex:
    """The corpus sorted by upload time, and by (topic, upload time), built once per world."""

    by_upload: np.ndarray      # [V] video indices by upload time
    upload_sorted: np.ndarray  # [V] their upload times
    topic_order: np.ndarray    # [V] video indices by (topic, upload time)
    topic_keys: np.ndarray     # [V] their sort keys
    topic_start: np.ndarray    # [num_topics] first position of each topic in topic_order

    @classmethod
    def of(cls, world: World) -> "CorpusIndex":
        by_upload = np.argsort(world.upload, kind="stable")
        order = np.lexsort((world.upload, world.video_topic))
        keys = world.video_topic[order].astype(np.int64) * _KEY_SCALE + (
            world.upload[order] - _KEY_ORIGIN)
        start = np.searchsorted(world.video_topic[order], np.arange(world.config.num_topics))
        return cls(by_upload, world.upload[by_upload], order, keys, start)


def user_topic_draw(world: World, rng: np.random.Generator, users: np.ndarray,
                    explore: float = 0.0) -> np.ndarray:
    """One topic per user from their topic weights ([n] ints); `explore` = share of random."""
    cum = np.cumsum(world.user_topic_weights[users], axis=1)
    slot = (rng.random(len(users))[:, None] > cum[:, :-1]).sum(axis=1)
    topics = world.user_topics[users, slot]
    wander = rng.random(len(users)) < explore
    topics[wander] = rng.integers(0, world.config.num_topics, size=int(wander.sum()))
    return topics


def _watched_seconds(world: World, rng: np.random.Generator, users: np.ndarray,
                     videos: np.ndarray) -> np.ndarray:
    """Watch time of clicked/searched videos: duration * Beta(mean = true watched fraction)."""
    kappa = world.config.watch_concentration
    mean = np.clip(world.watch_fraction(users, videos), 1e-6, 1 - 1e-6)
    return world.duration[videos] * rng.beta(kappa * mean, kappa * (1 - mean))


def _dedupe_pages(pages: np.ndarray) -> np.ndarray:
    """Mask [S, P]: True for the first occurrence of each video on its page."""
    order = np.argsort(pages, axis=1, kind="stable")
    sorted_pages = np.take_along_axis(pages, order, axis=1)
    repeat = np.zeros_like(pages, dtype=bool)
    repeat[:, 1:] = sorted_pages[:, 1:] == sorted_pages[:, :-1]
    keep = np.ones_like(pages, dtype=bool)
    np.put_along_axis(keep, order, ~repeat, axis=1)
    return keep


def _searches(world: World, sources: CandidateSources, rng: np.random.Generator,
              users: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, ...]:
    """Searches before some sessions and the watches they lead to."""
    c = world.config
    searching = rng.random(len(users)) < c.search_probability
    s_users, s_times = users[searching], times[searching] - SEARCH_LEAD_S
    topics = user_topic_draw(world, rng, s_users, explore=0.1)
    tokens = np.asarray(topic_tokens(c.num_topics, c.tokens_per_topic), dtype=object)
    n_tokens = rng.integers(1, 4, size=len(s_users))
    picks = rng.integers(0, c.tokens_per_topic, size=(len(s_users), 3))
    words = tokens[topics[:, None], picks]
    queries = np.array([" ".join(row[:n]) for row, n in zip(words, n_tokens)], dtype=object)
    n_watches = rng.integers(1, c.search_watches + 1, size=len(s_users))
    w_users = np.repeat(s_users, n_watches)
    w_step = np.arange(len(w_users)) - np.repeat(np.cumsum(n_watches) - n_watches, n_watches)
    w_times = np.repeat(s_times, n_watches) + SEARCH_WATCH_GAP_S * (1 + w_step)
    w_videos = sources.personal(rng, w_users, w_times, topics=np.repeat(topics, n_watches))
    return (s_users, s_times, queries,
            w_users, w_videos, w_times, _watched_seconds(world, rng, w_users, w_videos))


def simulate_day(world: World, index: CorpusIndex, day: int, users: np.ndarray,
                 times: np.ndarray) -> DayLogs:
    """Logs of the sessions (users [S], times [S]) that fall on `day` (0-based)."""
    c = world.config
    rng = np.random.default_rng(np.random.SeedSequence([world.seed, 2, day]))
    sources = CandidateSources(world, index, day)
    s_users, s_times, queries, sw_users, sw_videos, sw_times, sw_seconds = _searches(
        world, sources, rng, users, times)

    n, p = len(users), c.page_size
    slot_users = np.repeat(users, p)
    slot_times = np.repeat(times, p)
    source = rng.choice(3, size=n * p, p=np.asarray(c.source_mix) / np.sum(c.source_mix))
    pages: np.ndarray = np.empty(n * p, dtype=np.int64)
    for code, draw in ((0, lambda m: sources.popular(rng, int(m.sum()))),
                       (1, lambda m: sources.fresh(rng, slot_times[m])),
                       (2, lambda m: sources.personal(rng, slot_users[m], slot_times[m]))):
        mask = source == code
        pages[mask] = draw(mask)
    pages = pages.reshape(n, p)
    keep = _dedupe_pages(pages)
    # One redraw from the popular source for repeated slots; repeats left after it are dropped.
    pages[~keep] = sources.popular(rng, int((~keep).sum()))
    keep = _dedupe_pages(pages).ravel()

    positions = np.tile(np.arange(1, p + 1), n)[keep]
    i_users, i_times, i_videos = slot_users[keep], slot_times[keep], pages.ravel()[keep]
    p_click = world.click_probability(i_users, i_videos, i_times, positions)
    clicked = rng.random(len(p_click)) < p_click
    seconds = np.zeros(len(p_click))
    seconds[clicked] = _watched_seconds(world, rng, i_users[clicked], i_videos[clicked])
    expected = p_click * world.expected_watch_time_given_click(i_users, i_videos)

    click_times = i_times[clicked] + CLICK_GAP_S * positions[clicked]
    return DayLogs(
        imp_user=i_users, imp_video=i_videos, imp_time=i_times, imp_position=positions,
        imp_clicked=clicked.astype(np.int64), imp_watch_time=seconds,
        imp_click_probability=p_click, imp_expected_watch_time=expected,
        watch_user=np.concatenate([sw_users, i_users[clicked]]),
        watch_video=np.concatenate([sw_videos, i_videos[clicked]]),
        watch_time=np.concatenate([sw_times, click_times]),
        watch_seconds=np.concatenate([sw_seconds, seconds[clicked]]),
        search_user=s_users, search_time=s_times, search_query=queries)


def simulate_days(world: World, progress: Callable[[int, int], object] | None = None
                  ) -> Iterator[tuple[int, DayLogs]]:
    """Yield (day, DayLogs) for every day of the period, in order."""
    users, times = schedule_sessions(world)
    index = CorpusIndex.of(world)
    bounds = np.searchsorted(times, world.start + DAY * np.arange(world.config.days + 1))
    for day in range(world.config.days):
        lo, hi = bounds[day], bounds[day + 1]
        yield day, simulate_day(world, index, day, users[lo:hi], times[lo:hi])
        if progress is not None:
            progress(day + 1, world.config.days)
