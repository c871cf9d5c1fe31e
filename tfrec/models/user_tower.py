"""The paper's user tower (Covington et al. 2016, Figure 3) as a functional Keras model.

Inputs (named, as the tf.data pipeline and the serving signature provide them):
  watch_history  [B, H] string video ids, "" padding -> embedding, masked average
  search_tokens  [B, S] string tokens, "" padding   -> hashed embedding, masked average
  <demographic>  [B] string (e.g. age, gender)       -> StringLookup (OOV-safe) embedding
  example_age    [B] float32 seconds (0 at serving)  -> [age, age^2] scaled
Concatenated -> ReLU tower (e.g. 1024-512-256) -> u [B, d].
"""
from tfrec.config import TOWER_FEATURES as FEATURES
from tfrec.config import UserTowerConfig  # noqa: F401  (re-exported)
from tfrec.tf_keras2 import tf
from tfrec.models.layers import ExampleAgeFeatures, MaskedMean, relu_tower


def build_user_tower(config, video_lookup, video_embedding, demographic_vocabularies,
                     max_example_age_seconds, seed=0):
    """The user tower as a functional model with named inputs.

    Args:
      config: UserTowerConfig.
      video_lookup: StringLookup over the video ids (mask "" -> 0, OOV -> 1), shared with the
        softmax side so both index the same rows.
      video_embedding: Embedding layer for watched videos (the softmax table when shared).
      demographic_vocabularies: {column: [values seen in training]}.
      max_example_age_seconds: scale of the example-age feature.
      seed: seeds the dropout masks (a function of seed and training step: resumable).
    Returns:
      tf.keras.Model mapping the named inputs to u [B, hidden_units[-1]].
    """
    unknown = set(config.features) - set(FEATURES)
    if unknown:
        raise ValueError(f"unknown user features {sorted(unknown)}; choose from {FEATURES}")
    reg = tf.keras.regularizers.l2(config.l2) if config.l2 else None
    inputs, parts = {}, []
    if "watch_history" in config.features:
        inputs["watch_history"] = tf.keras.Input((config.max_history,), dtype=tf.string,
                                                 name="watch_history")
        rows = video_lookup(inputs["watch_history"])
        parts.append(MaskedMean(name="watch_history_mean")(video_embedding(rows),
                                                           tf.not_equal(rows, 0)))
    if "search_tokens" in config.features:
        inputs["search_tokens"] = tf.keras.Input((config.max_search_tokens,), dtype=tf.string,
                                                 name="search_tokens")
        buckets = tf.keras.layers.Hashing(config.search_buckets + 1, mask_value="",
                                          name="search_token_hash")(inputs["search_tokens"])
        emb = tf.keras.layers.Embedding(config.search_buckets + 1, config.search_dim,
                                        embeddings_regularizer=reg,
                                        name="search_token_embedding")(buckets)
        parts.append(MaskedMean(name="search_tokens_mean")(emb, tf.not_equal(buckets, 0)))
    if "demographics" in config.features:
        for column in config.demographic_columns:
            if column not in demographic_vocabularies:
                raise ValueError(f"demographic column {column!r} is not in the users table "
                                 f"(have {sorted(demographic_vocabularies)})")
            inputs[column] = tf.keras.Input((), dtype=tf.string, name=column)
            lookup = tf.keras.layers.StringLookup(
                vocabulary=sorted(set(demographic_vocabularies[column])), num_oov_indices=1,
                name=f"{column}_lookup")
            parts.append(tf.keras.layers.Embedding(lookup.vocabulary_size(),
                                                   config.demographic_dim,
                                                   embeddings_regularizer=reg,
                                                   name=f"{column}_embedding")(
                lookup(inputs[column])))
    age = None
    if "example_age" in config.features:
        inputs["example_age"] = tf.keras.Input((), dtype=tf.float32, name="example_age")
        age = ExampleAgeFeatures(max_example_age_seconds, config.example_age_scale,
                                 name="example_age_features")(inputs["example_age"])
        if config.example_age_path == "first_layer":
            parts.append(age)
            age = None
    if not parts:
        raise ValueError("the user tower needs at least one feature besides example age")
    x = parts[0] if len(parts) == 1 else tf.keras.layers.Concatenate(name="user_features")(parts)
    x = relu_tower(x, config.hidden_units, reg, config.dropout, seed=seed or 0)
    if age is not None:  # output_shift: [x, x^2] -> a direction in u-space, 0 at serving
        shift = tf.keras.layers.Dense(config.hidden_units[-1], use_bias=False,
                                      name="example_age_shift")(age)
        x = tf.keras.layers.Add(name="user_vector")([x, shift])
    return tf.keras.Model(inputs, x, name="user_tower")
