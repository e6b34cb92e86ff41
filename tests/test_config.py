"""Config: defaults, YAML, --set overrides typed by the schema, one-line errors."""

import pytest

from pipeline.config import Config, ConfigError, load_config, set_dotted


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_default_config_validates_and_has_every_stage_switch():
    c = load_config()
    for name in ("langid", "heuristics", "exact_dedup", "minhash_dedup", "quality", "mixture"):
        assert isinstance(getattr(c.stages, name).enabled, bool)
    assert c.mode == "filter"
    assert len(c.stages.langid.languages) >= 30


def test_unknown_key_is_one_line_naming_it(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "stages:\n  langid:\n    enabeld: true\n"))
    msg = str(e.value)
    assert "\n" not in msg and "stages.langid.enabeld" in msg and "unknown key" in msg


def test_wrong_type_and_impossible_value(tmp_path):
    with pytest.raises(ConfigError, match=r"output\.shard_bytes"):
        load_config(write(tmp_path, "output: {shard_bytes: lots}\n"))
    with pytest.raises(ConfigError, match=r"stages\.mixture\.targets.*add up to"):
        load_config(write(tmp_path, "stages: {mixture: {targets: {code: 0.7, multilingual: 0.5}}}\n"))
    with pytest.raises(ConfigError, match=r"runner\.workers"):
        load_config(write(tmp_path, "runner: {workers: 0}\n"))


def test_set_overrides_are_typed_by_the_schema():
    c = load_config(
        None,
        [
            "mode=annotate",
            "stages.minhash_dedup.enabled=false",
            "output.shard_bytes=100000",
            "stages.mixture.targets.code=0.3",
        ],
    )
    assert c.mode == "annotate" and c.stages.minhash_dedup.enabled is False
    assert c.output.shard_bytes == 100000 and c.stages.mixture.targets["code"] == 0.3
    with pytest.raises(ConfigError, match=r"mode"):
        load_config(None, ["mode=shred"])
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        set_dotted({}, "novalue")


def test_yaml_tags_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "mode: !!python/object/apply:os.system ['true']\n"))


def test_digest_is_stable_and_changes_with_config():
    a, b = load_config(), load_config()
    assert a.digest() == b.digest()
    assert load_config(None, ["stages.mixture.seed=7"]).digest() != a.digest()
    assert isinstance(Config().digest(), str)


def test_set_value_is_the_literal_string_where_the_schema_refuses_the_yaml_scalar():
    """A --set value is YAML, except where YAML makes it a null, bool, number or date that the
    field refuses: then it is the string typed."""
    c = load_config(None, ["stages.quality.on_error=null", "output.path=2024"])
    assert c.stages.quality.on_error == "null" and c.output.path == "2024"
    c = load_config(None, ["tokenizer.path=null", "stages.mixture.enabled=no", "output.path=2024-01-01"])
    assert c.tokenizer.path is None  # the field admits null: YAML's null it is
    assert c.stages.mixture.enabled is False and c.output.path == "2024-01-01"
    with pytest.raises(ConfigError, match=r"stages\.quality\.on_error"):
        load_config(None, ["stages.quality.on_error=maybe"])
    with pytest.raises(ConfigError, match=r"runner\.workers"):
        load_config(None, ["runner.workers=null"])  # an int field: "null" is no better


def test_deep_nesting_and_huge_integers_are_one_line_errors(tmp_path):
    for text in (
        "stages: " + "[" * 5000 + "]" * 5000 + "\n",
        "a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n",
        "runner: {workers: " + "9" * 5000 + "}\n",
    ):
        with pytest.raises(ConfigError) as e:
            load_config(write(tmp_path, text))
        assert "\n" not in str(e.value) and str(e.value).startswith("config error:")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(None, ["stages.mixture.targets=" + "[" * 5000 + "]" * 5000])
