"""Settings of the simulated world, and the named size presets (plain dataclasses, no TF)."""
import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class SimulatorConfig:
    """Everything that decides a simulated world; with `seed`, it decides it exactly.

    Sizes:
      num_users, num_videos, num_topics, num_channels: entity counts.
      days: length of the logged period; sessions fall uniformly inside it.
      mean_sessions: sessions per user on average (activity is log-normal around it).
      activity_sigma: sigma of the log-normal activity: larger = heavier tail of heavy users.
      page_size: impressions per home-page session.
    Videos:
      latent_dim: width of the latent taste space (topics are random unit directions in it).
      prehistory_days: part of the corpus is uploaded before the period starts, in this window.
      prehistory_fraction: the share of videos uploaded before the period (the rest stream in).
      popularity_sigma: log-normal spread of a video's base popularity.
      rise_days, decay_days: popularity after upload rises with time constant rise_days and
        decays with decay_days (the freshness effect); evergreen_floor keeps a small tail.
      clickbait_a, clickbait_b: Beta shape of the clickbait level in [0, 1].
    Behaviour (logit coefficients; see World for the formulas):
      source_mix: shares of page slots filled from (popular, fresh, personal) candidates.
      fresh_days: "fresh" candidates were uploaded at most this many days earlier.
      click_bias, click_affinity, click_clickbait, click_freshness: P(attractive) logit terms.
      position_decay: examination probability at 1-based position p is p ** -position_decay.
      watch_bias, watch_affinity, watch_quality, watch_clickbait: watched-fraction logit terms.
      watch_concentration: Beta concentration of the watched fraction around its mean.
      language_penalty: affinity lost when the video's language is not the user's.
      affinity_scale: scale of the taste dot product in the affinity.
      search_probability: chance a session starts with a search (followed by watches).
      search_watches: most watches after one search (1..search_watches, uniform).
      tokens_per_topic: search vocabulary size of each topic.
    """

    num_users: int = 5_000
    num_videos: int = 10_000
    num_topics: int = 32
    num_channels: int = 500
    days: int = 56
    mean_sessions: float = 12.0
    activity_sigma: float = 1.0
    page_size: int = 10
    latent_dim: int = 16
    prehistory_days: int = 60
    prehistory_fraction: float = 0.3
    popularity_sigma: float = 1.0
    rise_days: float = 0.5
    decay_days: float = 7.0
    evergreen_floor: float = 0.03
    clickbait_a: float = 0.6
    clickbait_b: float = 3.0
    source_mix: tuple[float, ...] = (0.35, 0.2, 0.45)
    fresh_days: float = 7.0
    click_bias: float = -2.0
    click_affinity: float = 1.0
    click_clickbait: float = 2.5
    click_freshness: float = 1.0
    position_decay: float = 0.7
    watch_bias: float = -0.5
    watch_affinity: float = 0.8
    watch_quality: float = 0.6
    watch_clickbait: float = 3.0
    watch_concentration: float = 4.0
    language_penalty: float = 2.0
    affinity_scale: float = 2.5
    search_probability: float = 0.3
    search_watches: int = 2
    tokens_per_topic: int = 8
    start_timestamp: int = 1_600_000_000

    def __post_init__(self) -> None:
        for name in ("num_users", "num_videos", "num_topics", "num_channels", "days",
                     "page_size", "latent_dim", "tokens_per_topic", "search_watches"):
            if getattr(self, name) < 1:
                raise ValueError(f"simulator {name} must be >= 1, got {getattr(self, name)}")
        if len(self.source_mix) != 3 or min(self.source_mix) < 0 or sum(self.source_mix) <= 0:
            raise ValueError(f"simulator source_mix must be 3 non-negative shares "
                             f"(popular, fresh, personal), got {self.source_mix}")
        if not 0 <= self.search_probability <= 1 or not 0 <= self.prehistory_fraction <= 1:
            raise ValueError("simulator search_probability and prehistory_fraction must be in "
                             "[0, 1]")
        if self.mean_sessions <= 0 or self.rise_days <= 0 or self.decay_days <= 0:
            raise ValueError("simulator mean_sessions, rise_days and decay_days must be > 0")


PRESETS = {
    # Tests: a few seconds of simulation, enough events for the property tests.
    "tiny": SimulatorConfig(num_users=400, num_videos=600, num_topics=8, num_channels=40,
                            days=28, mean_sessions=10.0),
    # The pipeline's simulated world (docs/PROTOCOL.md, P2: 10k videos / 5k users).
    "small": SimulatorConfig(),
    # About 10M events: the speed benchmark.
    "medium": SimulatorConfig(num_users=80_000, num_videos=100_000, num_topics=64,
                              num_channels=5_000, mean_sessions=11.0),
    # Scale (docs/PROTOCOL.md, P2: 1M videos / 1M users); about 120M events, written in parts.
    "large": SimulatorConfig(num_users=1_000_000, num_videos=1_000_000, num_topics=128,
                             num_channels=50_000, mean_sessions=11.0),
}


def preset(name: str, **overrides: Any) -> SimulatorConfig:
    """The named preset, with fields replaced by `overrides` (e.g. num_users=100)."""
    if name not in PRESETS:
        raise ValueError(f"unknown simulator preset {name!r}; presets: {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)
