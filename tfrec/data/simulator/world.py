"""The simulated world: videos, users and the ground truth of how users respond to videos.

Everything here is a pure function of (SimulatorConfig, seed). The behaviour model:

  affinity(u, j)        = affinity_scale * <p_u, v_j> - language_penalty * [lang_u != lang_j]
                          (p_u, v_j: unit taste vectors; topics are directions in that space)
  popularity(j, t)      = base_j * (curve(age) ), curve(a) = (1 - e^(-a/rise)) e^(-a/decay) + floor
                          (0 before upload: rises after upload, then decays; the freshness effect)
  P(click | u, j, t, p) = p ** -position_decay                                (examination)
                          * sigmoid(click_bias + click_affinity * affinity
                                    + click_clickbait * clickbait_j
                                    + click_freshness * e^(-age/decay))       (attraction)
  watched fraction F    ~ Beta with mean m = sigmoid(watch_bias + watch_affinity * affinity
                          + watch_quality * quality_j - watch_clickbait * clickbait_j),
                          concentration watch_concentration; watch time = duration_j * F
                          (so it never exceeds the duration)
  E[watch time]         = P(click) * duration_j * m          (non-clicks watch 0 seconds)

Times are int64 seconds; ages are in seconds unless a name says days.
"""
import dataclasses

import numpy as np
import numpy.typing as npt

from tfrec.data.simulator.config import SimulatorConfig

DAY = 86_400
LANGUAGES = ("en", "es", "pt", "de")
LANGUAGE_SHARES = (0.55, 0.2, 0.15, 0.1)
COUNTRIES = {"en": ("US", "GB", "IN"), "es": ("ES", "MX"), "pt": ("BR", "PT"), "de": ("DE", "AT")}
AGE_BUCKETS = ("13-17", "18-24", "25-34", "35-44", "45-54", "55+")
GENDERS = ("f", "m")
DEVICES = ("mobile", "desktop", "tv")
TOPIC_WORDS = (
    "cooking", "gaming", "music", "news", "football", "travel", "science", "comedy", "fitness",
    "fashion", "cars", "history", "movies", "pets", "tech", "art", "dance", "finance", "garden",
    "space", "chess", "anime", "basketball", "cycling", "diy", "education", "fishing", "health",
    "hiking", "kids", "language", "math", "nature", "photography", "podcast", "poetry",
    "politics", "programming", "religion", "running", "sailing", "skating", "sleep", "soccer",
    "surfing", "tennis", "theatre", "trains", "unboxing", "vlog", "weather", "wrestling", "yoga",
    "baking", "beauty", "birds", "boxing", "camping", "crypto", "drawing", "electronics",
    "film", "golf", "guitar",
)
TOKEN_SUFFIXES = ("", "tips", "tutorial", "live", "best", "review", "how", "news", "top", "guide",
                  "vlog", "challenge", "explained", "beginner", "pro", "highlights")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def topic_names(num_topics: int) -> list[str]:
    """Readable topic names: the word list, then numbered when there are more topics."""
    return [TOPIC_WORDS[k % len(TOPIC_WORDS)] + ("" if k < len(TOPIC_WORDS)
                                                  else str(k // len(TOPIC_WORDS)))
            for k in range(num_topics)]


def topic_tokens(num_topics: int, tokens_per_topic: int) -> list[list[str]]:
    """[num_topics][tokens_per_topic] search tokens; each topic's tokens are its own."""
    names = topic_names(num_topics)
    suffixes = [TOKEN_SUFFIXES[i % len(TOKEN_SUFFIXES)] + ("" if i < len(TOKEN_SUFFIXES)
                                                          else str(i // len(TOKEN_SUFFIXES)))
                for i in range(tokens_per_topic)]
    return [[name + (f"-{s}" if s else "") for s in suffixes] for name in names]


@dataclasses.dataclass
class World:
    """Entities and ground truth. Arrays are indexed by user index u in [0, num_users) and
    video index j in [0, num_videos); ids at the edges are f"u{u}" and f"v{j}".

    Videos:  video_topic [V] int, video_channel [V] int, video_language [V] int (LANGUAGES),
             duration [V] float64 s, upload [V] int64 s, quality [V], clickbait [V] in [0, 1],
             base_popularity [V], video_taste [V, D] float32 (unit rows).
    Users:   user_taste [U, D] float32, user_topics [U, 3] int, user_topic_weights [U, 3],
             user_language [U] int, age / gender / device / country [U] int codes,
             activity [U] (expected sessions).
    """

    config: SimulatorConfig
    seed: int
    topic_directions: np.ndarray
    video_topic: np.ndarray
    video_channel: np.ndarray
    video_language: np.ndarray
    duration: np.ndarray
    upload: np.ndarray
    quality: np.ndarray
    clickbait: np.ndarray
    base_popularity: np.ndarray
    video_taste: np.ndarray
    user_taste: np.ndarray
    user_topics: np.ndarray
    user_topic_weights: np.ndarray
    user_language: np.ndarray
    user_age: np.ndarray
    user_gender: np.ndarray
    user_device: np.ndarray
    user_country: np.ndarray
    country_names: tuple[str, ...]
    activity: np.ndarray

    @property
    def start(self) -> int:
        return self.config.start_timestamp

    @property
    def end(self) -> int:
        return self.config.start_timestamp + self.config.days * DAY

    # ---- ground truth -------------------------------------------------------------------------
    def affinity(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        """True affinity [n] of users[i] for videos[i] (index arrays of one shape)."""
        c = self.config
        dot = np.einsum("nd,nd->n", self.user_taste[users], self.video_taste[videos])
        mismatch = self.user_language[users] != self.video_language[videos]
        return c.affinity_scale * dot - c.language_penalty * mismatch

    def affinity_matrix(self, users: np.ndarray, videos: npt.ArrayLike | None = None
                        ) -> np.ndarray:
        """True affinity [len(users), V] (or [len(users), len(videos)]) for whole rows."""
        c = self.config
        videos = np.arange(len(self.upload)) if videos is None else np.asarray(videos)
        dot = self.user_taste[users] @ self.video_taste[videos].T
        mismatch = self.user_language[users][:, None] != self.video_language[videos][None, :]
        return c.affinity_scale * dot - c.language_penalty * mismatch

    def popularity_curve(self, age_seconds: np.ndarray) -> np.ndarray:
        """Relative popularity at an age (0 before upload): rises, then decays, then a floor."""
        c = self.config
        a = np.maximum(age_seconds, 0) / DAY
        curve = (1 - np.exp(-a / c.rise_days)) * np.exp(-a / c.decay_days) + c.evergreen_floor
        return np.where(age_seconds >= 0, curve, 0.0)

    def attraction(self, users: np.ndarray, videos: np.ndarray, times: np.ndarray
                   ) -> np.ndarray:
        """P(a user who examines the slot clicks) [n]."""
        c = self.config
        age_days = np.maximum(times - self.upload[videos], 0) / DAY
        logit = (c.click_bias + c.click_affinity * self.affinity(users, videos)
                 + c.click_clickbait * self.clickbait[videos]
                 + c.click_freshness * np.exp(-age_days / c.decay_days))
        return sigmoid(logit)

    def examination(self, positions: npt.ArrayLike) -> np.ndarray:
        """P(the slot at 1-based position p is looked at) [n]."""
        return np.asarray(positions, np.float64) ** -self.config.position_decay

    def click_probability(self, users: np.ndarray, videos: np.ndarray, times: np.ndarray,
                          positions: npt.ArrayLike) -> np.ndarray:
        """True P(click) [n] of impressions (user, video, time, 1-based position)."""
        return self.examination(positions) * self.attraction(users, videos, times)

    def watch_fraction(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        """Mean watched fraction of the duration, given a click [n] in (0, 1)."""
        c = self.config
        return sigmoid(c.watch_bias + c.watch_affinity * self.affinity(users, videos)
                       + c.watch_quality * self.quality[videos]
                       - c.watch_clickbait * self.clickbait[videos])

    def expected_watch_time_given_click(self, users: np.ndarray, videos: np.ndarray
                                        ) -> np.ndarray:
        """E[watch time | click] [n], seconds."""
        return self.duration[videos] * self.watch_fraction(users, videos)

    def expected_watch_time(self, users: np.ndarray, videos: np.ndarray, times: np.ndarray,
                            positions: npt.ArrayLike) -> np.ndarray:
        """E[watch time] [n] of impressions, seconds (0 for an impression never clicked)."""
        return (self.click_probability(users, videos, times, positions)
                * self.expected_watch_time_given_click(users, videos))

    def true_top_k(self, users: np.ndarray, times: npt.ArrayLike, k: int,
                   exclude: list[np.ndarray] | None = None) -> np.ndarray:
        """The k videos of highest true affinity available (uploaded <= time) per query.

        Args:
          users: [q] user indices; times: [q] query times (s).
          exclude: optional list of q index arrays not to count (e.g. what was already watched).
        Returns:
          [q, k] video indices, best first.
        """
        scores = self.affinity_matrix(users)
        scores[self.upload[None, :] > np.asarray(times)[:, None]] = -np.inf
        if exclude is not None:
            for row, ex in enumerate(exclude):
                scores[row, ex] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1)


def build_world(config: SimulatorConfig, seed: int) -> World:
    """The world's entities for `config` and `seed` (deterministic)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    c = config
    d, k_topics = c.latent_dim, c.num_topics
    topics = _unit(rng.normal(size=(k_topics, d)))
    # Topics differ in popularity (Zipf-like), so a few topics hold most of the watching.
    topic_share = 1.0 / np.arange(1, k_topics + 1) ** 0.8
    topic_share /= topic_share.sum()

    # Channels: a home topic and a language each; a video inherits both (mostly the topic).
    channel_topic = rng.choice(k_topics, size=c.num_channels, p=topic_share)
    channel_language = rng.choice(len(LANGUAGES), size=c.num_channels, p=LANGUAGE_SHARES)
    v = c.num_videos
    video_channel = rng.integers(0, c.num_channels, size=v)
    off_topic = rng.random(v) < 0.15
    video_topic = np.where(off_topic, rng.choice(k_topics, size=v, p=topic_share),
                           channel_topic[video_channel])
    video_taste = _unit(topics[video_topic] + rng.normal(scale=0.6 / np.sqrt(d), size=(v, d)))
    before = rng.random(v) < c.prehistory_fraction
    upload = np.where(before,
                      c.start_timestamp - rng.integers(1, c.prehistory_days * DAY + 1, size=v),
                      c.start_timestamp + rng.integers(0, c.days * DAY, size=v)).astype(np.int64)
    duration = np.clip(np.exp(rng.normal(np.log(300), 0.8, size=v)), 30, 3600).round()
    quality = rng.normal(size=v)
    clickbait = rng.beta(c.clickbait_a, c.clickbait_b, size=v)
    base_popularity = np.exp(rng.normal(scale=c.popularity_sigma, size=v) + 0.5 * quality)

    # Users: 3 topics with Dirichlet weights (often one dominates), taste near their mix.
    u = c.num_users
    user_topics = np.stack([rng.choice(k_topics, size=u, p=topic_share) for _ in range(3)], 1)
    weights = rng.dirichlet(np.full(3, 0.5), size=u)
    user_taste = _unit(np.einsum("uk,ukd->ud", weights, topics[user_topics])
                       + rng.normal(scale=0.3 / np.sqrt(d), size=(u, d)))
    # Demographics follow taste: each topic leans to some ages and a gender; device follows age.
    topic_age = rng.normal(scale=1.5, size=(k_topics, len(AGE_BUCKETS)))
    topic_gender = rng.normal(scale=1.5, size=k_topics)
    age_logits = np.einsum("uk,uka->ua", weights, topic_age[user_topics])
    user_age = np.argmax(age_logits + rng.gumbel(size=age_logits.shape), axis=1)
    gender_logit = np.einsum("uk,uk->u", weights, topic_gender[user_topics])
    user_gender = (rng.random(u) < sigmoid(gender_logit)).astype(np.int64)
    device_logits = np.outer(user_age - 2.5, [-0.4, 0.3, 0.2])
    user_device = np.argmax(device_logits + rng.gumbel(size=device_logits.shape), axis=1)
    user_language = rng.choice(len(LANGUAGES), size=u, p=LANGUAGE_SHARES)
    country_names = tuple(cn for lang in LANGUAGES for cn in COUNTRIES[lang])
    first_country = np.cumsum([0] + [len(COUNTRIES[lang]) for lang in LANGUAGES])[:-1]
    n_countries = np.array([len(COUNTRIES[lang]) for lang in LANGUAGES])
    user_country = (first_country[user_language]
                    + (rng.random(u) * n_countries[user_language]).astype(np.int64))
    # Heavy tail of activity: log-normal around mean_sessions (mean preserved).
    activity = c.mean_sessions * np.exp(rng.normal(scale=c.activity_sigma, size=u)
                                        - c.activity_sigma ** 2 / 2)
    return World(
        config=c, seed=seed, topic_directions=topics.astype(np.float32),
        video_topic=video_topic, video_channel=video_channel,
        video_language=channel_language[video_channel], duration=duration, upload=upload,
        quality=quality, clickbait=clickbait, base_popularity=base_popularity,
        video_taste=video_taste.astype(np.float32), user_taste=user_taste.astype(np.float32),
        user_topics=user_topics, user_topic_weights=weights, user_language=user_language,
        user_age=user_age, user_gender=user_gender, user_device=user_device,
        user_country=user_country, country_names=country_names, activity=activity)
