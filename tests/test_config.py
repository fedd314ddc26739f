"""Config validation: every mistake names the field, the bad value and what is allowed."""

import textwrap

import pytest

from pipelines.core.settings import ConfigError
from pipelines.build.config import build_config_from_dict, load_build_config


def _cfg(**over):
    base = {
        "sources": [{"name": "s", "type": "jsonl", "path": "x.jsonl"}],
        "stages": [{"stage": "normalize"}, {"stage": "length_filter", "min_words": 3}],
        "output": {"dir": "out"},
    }
    base.update(over)
    return base


def test_valid_config_parses_stage_params():
    cfg = build_config_from_dict(_cfg())
    assert [s.stage for s in cfg.stages] == ["normalize", "length_filter"]
    assert cfg.stages[1].min_words == 3
    assert cfg.runner.name == "DirectRunner"


def test_unknown_stage_suggests_closest_and_lists_allowed():
    with pytest.raises(ConfigError) as e:
        build_config_from_dict(_cfg(stages=[{"stage": "lenght_filter"}]))
    msg = str(e.value)
    assert "stages[0].stage" in msg and "'lenght_filter'" in msg
    assert "Did you mean 'length_filter'" in msg and "exact_dedup" in msg


def test_bad_parameter_value_names_field_and_value():
    with pytest.raises(ConfigError) as e:
        build_config_from_dict(_cfg(stages=[{"stage": "length_filter", "min_words": -3}]))
    msg = str(e.value)
    assert "stages[0].min_words" in msg and "-3" in msg and "greater than or equal to 0" in msg


def test_misspelled_parameter_is_rejected():
    with pytest.raises(ConfigError) as e:
        build_config_from_dict(_cfg(stages=[{"stage": "length_filter", "min_word": 3}]))
    assert "stages[0].min_word: unknown field" in str(e.value)


def test_cross_field_rule_explains_fix():
    with pytest.raises(ConfigError) as e:
        build_config_from_dict(_cfg(stages=[{"stage": "length_filter", "min_words": 10,
                                             "max_words": 5}]))
    assert "max_words (5) must be >= min_words (10)" in str(e.value)


def test_bad_source_type_lists_allowed_values():
    with pytest.raises(ConfigError) as e:
        build_config_from_dict(_cfg(sources=[{"name": "s", "type": "csv", "path": "x"}]))
    msg = str(e.value)
    assert "sources[0].type" in msg and '"csv"' in msg and "'jsonl'" in msg and "'parquet'" in msg


def test_missing_output_and_duplicate_labels():
    data = _cfg(stages=[{"stage": "normalize"}, {"stage": "normalize"}])
    del data["output"]
    with pytest.raises(ConfigError) as e:
        build_config_from_dict(data)
    msg = str(e.value)
    assert "output: Field required" in msg
    assert "stages[1].label: 'normalize' is used twice" in msg


def test_repeated_stage_with_labels_is_fine():
    cfg = build_config_from_dict(_cfg(stages=[{"stage": "normalize"},
                                              {"stage": "normalize", "label": "normalize_again"}]))
    assert [s.label for s in cfg.stages] == [None, "normalize_again"]


def test_runner_mode_validated():
    with pytest.raises(ConfigError) as e:
        build_config_from_dict(_cfg(runner={"direct_running_mode": "gpu"}))
    assert "runner.direct_running_mode" in str(e.value)


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_build_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_build_config(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_build_config(top)


def test_bundled_configs_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    for name in ("demo.yaml", "example_full.yaml"):
        cfg = load_build_config(root / name)
        assert cfg.sources and cfg.output.dir


def test_overrides_apply(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(textwrap.dedent("""
        sources: [{name: s, type: jsonl, path: x.jsonl}]
        output: {dir: out}
    """))
    cfg = load_build_config(f, {"output.dir": "elsewhere", "runner.direct_num_workers": 2})
    assert cfg.output.dir == "elsewhere" and cfg.runner.direct_num_workers == 2


def test_strict_types_keep_yaml_and_manifest_forms_working():
    # ints where floats are expected, lists for tuples, int dict keys written as JSON strings
    # (a config read back from manifest.json) are all still valid under strict types
    stages = [{"stage": "minhash_dedup", "threshold": 0.8, "fp_weight": 1},
              {"stage": "gopher_repetition", "max_top_ngram_char_frac": {2: 0.2, 3: 0.18}},
              {"stage": "score_select", "column": "n_words", "threshold": 5,
               "hist_range": [0, 100]}]
    stages = [s for s in stages if s["stage"] in __import__("pipelines.stages.registry",
                                                             fromlist=["x"]).load_stages()]
    cfg = build_config_from_dict(_cfg(stages=[{"stage": "length_filter"}] + stages))
    again = build_config_from_dict(cfg.model_dump(mode="json"))
    assert again.model_dump() == cfg.model_dump()


def test_strict_type_errors_name_field_value_and_fix():
    with pytest.raises(ConfigError) as e:
        build_config_from_dict(_cfg(stages=[{"stage": "minhash_dedup", "threshold": "1e-1"}]))
    msg = str(e.value)
    assert 'stages[0].threshold' in msg and '"1e-1"' in msg and "write 1.0e-3" in msg
    with pytest.raises(ConfigError) as e:
        build_config_from_dict(_cfg(sources=[{"name": "s", "type": "jsonl", "path": "x",
                                              "text_field": 3}]))
    assert "sources[0].text_field" in str(e.value) and "put the value in quotes" in str(e.value)
