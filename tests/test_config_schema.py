"""The pipeline config's schema (tfrec/config/): each kind of bad value is one ConfigError line
naming the file and the full dotted key; a valid config reads back to itself."""
import pydantic
import pytest
import yaml

from tfrec.config import ConfigError, PipelineConfig, load_config, parse_config, to_dict

MAIN = "pipelines/movielens_100k.yaml"


def _load(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\n" + text)
    return load_config(str(path))


@pytest.mark.parametrize("text,message", [
    # NaN and inf are refused by the schema (allow_inf_nan=False), not by each range check.
    ("candidate_generation:\n  training:\n    learning_rate: .nan\n",
     "'candidate_generation.training.learning_rate' must be a finite number, got nan"),
    ("evaluation:\n  p3_window_share: -.inf\n",
     "'evaluation.p3_window_share' must be a finite number, got -inf"),
    # A Literal choice.
    ("candidate_generation:\n  training:\n    optimizer: sgd\n",
     "'candidate_generation.training.optimizer' must be one of ('adam', 'adagrad'), got 'sgd'"),
    ("candidate_generation:\n  tower:\n    example_age_path: middle\n",
     "'candidate_generation.tower.example_age_path' must be one of ('first_layer', "
     "'output_shift'), got 'middle'"),
    # A negative width: the key names the list item.
    ("candidate_generation:\n  tower:\n    hidden_units: [64, -3]\n",
     "'candidate_generation.tower.hidden_units[1]' must be > 0, got -3"),
    ("ranking:\n  model:\n    hidden_units: [0]\n",
     "'ranking.model.hidden_units[0]' must be > 0, got 0"),
    # Both bounds of a field are named.
    ("ranking:\n  model:\n    negative_subsample_rate: 1.5\n",
     "'ranking.model.negative_subsample_rate' must be in (0, 1], got 1.5"),
    # A typo three sections deep, with the nearest valid key.
    ("ranking:\n  retrieved_impressions:\n    negatives_per_pag: 3\n",
     "unknown key 'ranking.retrieved_impressions.negatives_per_pag'; did you mean "
     "'ranking.retrieved_impressions.negatives_per_page'?"),
    # Rules across fields name the key they are about.
    ("candidate_generation:\n  tower:\n    max_history: 20\n",
     "'candidate_generation.tower.max_history' (20) must equal 'examples.max_history' (50)"),
    ("candidate_generation:\n  tower:\n    hidden_units: [16, 8]\n  softmax:\n"
     "    share_embeddings: true\n",
     "'candidate_generation.softmax.share_embeddings' needs tower.hidden_units[-1] == "
     "tower.embedding_dim, got 8 and 64"),
    ("evaluation:\n  ks: [5, 20]\ncandidate_generation:\n  training:\n"
     "    selection_metric: recall@10\n",
     "'candidate_generation.training.selection_metric' must be one of ('recall@5', "
     "'recall@20', 'ndcg@10', 'map@100'), got 'recall@10'"),
    ("evaluation:\n  protocol: p3\n  compare_protocol: p3\n",
     "'evaluation.compare_protocol' must be null or the other of ('p1', 'p3') than "
     "evaluation.protocol, got 'p3'"),
    ("data:\n  format: events\n", "'data.path' is required when data.format is events"),
    # Types are strict, as YAML's are: no silent "5" -> 5 or 1 -> True.
    ("export:\n  k: '5'\n", "'export.k' must be int, got '5'"),
    ("export:\n  enabled: 1\n", "'export.enabled' must be bool, got 1"),
    ("data:\n  simulator:\n    preset: huge\n",
     "'data.simulator.preset' must be one of ('large', 'medium', 'small', 'tiny'), got 'huge'"),
])
def test_a_bad_value_is_one_line_naming_the_file_and_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert str(err.value) == f"{tmp_path / 'bad.yaml'}: {message}"


def test_values_are_normalised_like_the_yaml_means_them(tmp_path):
    config = _load(tmp_path, "candidate_generation:\n  training:\n    learning_rate: 1\n"
                             "  tower:\n    hidden_units: [32, 16]\n")
    training = config.candidate_generation.training
    assert training.learning_rate == 1.0 and isinstance(training.learning_rate, float)
    assert config.candidate_generation.tower.hidden_units == (32, 16)
    assert config.candidate_generation.tower.example_age_path == "first_layer"


def test_the_resolved_config_reads_back_to_itself_with_every_default():
    config = load_config(MAIN)
    data = to_dict(config)
    assert parse_config(yaml.safe_load(yaml.safe_dump(data)), "resolved") == config

    def keys(model, prefix=""):
        for name, field in model.model_fields.items():
            if isinstance(field.annotation, type) and issubclass(field.annotation,
                                                                 pydantic.BaseModel):
                yield from keys(field.annotation, f"{prefix}{name}.")
            else:
                yield prefix + name

    def leaves(d, prefix=""):
        # An empty mapping is a field's value (examples.beam.options), not a section.
        for k, v in d.items():
            yield from leaves(v, f"{prefix}{k}.") if isinstance(v, dict) and v \
                else [prefix + k]

    assert list(leaves(data)) == list(keys(PipelineConfig))
    assert data["candidate_generation"]["tower"]["hidden_units"] == [128, 64]


def test_sections_are_read_only_and_copies_take_changes():
    config = load_config(MAIN)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.export.k = 5
    fewer = config.model_copy(update={"export": config.export.model_copy(update={"k": 5})})
    assert fewer.export.k == 5 and config.export.k == 100 and fewer != config
    assert hash(config.export) == hash(load_config(MAIN).export)
