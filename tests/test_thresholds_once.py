"""Each stage's thresholds and settings are declared once, in its ``filters`` config dataclass
(issue 21): the stage's Params fields are derived from the dataclass fields (default, bounds,
description) by ``params_from``, never re-declared in the stage. Scorer constructors take
their defaults from the same module's constants."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from filters.heuristics_c4 import C4Config
from filters.heuristics_fineweb import FineWebConfig
from filters.heuristics_gopher import GopherQualityConfig, GopherRepetitionConfig
from filters.minhash import MinHashConfig
from filters.normalize import NormalizeConfig
from pipelines.stages.base import params_from
from pipelines.stages.dedup.minhash_dedup import MinHashDedupParams
from pipelines.stages.filter.c4_filter import C4FilterParams
from pipelines.stages.filter.fineweb_filter import FineWebFilterParams
from pipelines.stages.filter.gopher_quality import GopherQualityParams
from pipelines.stages.filter.gopher_repetition import GopherRepetitionParams
from pipelines.stages.record_stage import RecordStageParams
from pipelines.stages.text.normalize import NormalizeParams

# stage Params -> (its filters dataclass, fields the stage gives its own default)
STAGES = {
    GopherQualityParams: (GopherQualityConfig, set()),
    GopherRepetitionParams: (GopherRepetitionConfig, set()),
    C4FilterParams: (C4Config, {"language_column"}),
    FineWebFilterParams: (FineWebConfig, {"language_column"}),
    MinHashDedupParams: (MinHashConfig, set()),
    NormalizeParams: (NormalizeConfig, set()),
}
IDS = [p.__name__ for p in STAGES]


def _stage_default(info):
    return info.default_factory() if info.default_factory is not None else info.default


def _as_config_value(f, value):
    return tuple(sorted(value.items())) if f.metadata.get("mapping") else value


@pytest.mark.parametrize("params", STAGES, ids=IDS)
def test_params_derive_from_the_dataclass(params):
    cfg, stage_defaults = STAGES[params]
    assert params.config_class is cfg
    for f in dataclasses.fields(cfg):
        info = params.model_fields[f.name]
        # inherited from the generated base, not re-declared in the stage's class body
        for klass in params.__mro__[:params.__mro__.index(params.__base__)]:
            assert f.name not in vars(klass).get("__annotations__", {}), (params, f.name)
        if f.name in stage_defaults:
            continue
        default = _stage_default(info)
        assert _as_config_value(f, default) == f.default, f.name
        assert type(_as_config_value(f, default)) is type(f.default), f.name
        if not f.metadata.get("mapping"):
            assert info.default is f.default, f.name  # the dataclass's own object


@pytest.mark.parametrize("params", STAGES, ids=IDS)
def test_default_params_give_the_default_config(params):
    cfg, stage_defaults = STAGES[params]
    p = params.model_validate({"stage": params.model_fields["stage"].annotation.__args__[0]})
    given = {k: getattr(cfg(), k) for k in stage_defaults}
    assert p.scorer_config(**given) == cfg()


@pytest.mark.parametrize("params", STAGES, ids=IDS)
def test_every_threshold_has_a_description(params):
    cfg, _ = STAGES[params]
    for f in dataclasses.fields(cfg):
        if f.name == "language_column":
            continue  # not a threshold: the stage documents its own column
        assert f.metadata.get("description"), f"{cfg.__name__}.{f.name} has no description"
        assert params.model_fields[f.name].description, f"{params.__name__}.{f.name}"


@pytest.mark.parametrize("params", STAGES, ids=IDS)
def test_bounds_come_from_the_dataclass(params):
    cfg, _ = STAGES[params]
    for f in dataclasses.fields(cfg):
        info = params.model_fields[f.name]
        got = {type(m).__name__.lower(): getattr(m, type(m).__name__.lower())
               for m in info.metadata if type(m).__name__ in ("Ge", "Le")}
        want = {k: f.metadata[k] for k in ("ge", "le") if k in f.metadata}
        assert got == want, f.name


def test_changing_a_default_in_the_dataclass_changes_the_params():
    """The only place a default lives is the dataclass: a config class with another default
    gives params (and a scorer config) with that default, with bounds and description kept."""
    for cfg in (GopherQualityConfig, GopherRepetitionConfig, C4Config, FineWebConfig,
                MinHashConfig, NormalizeConfig):
        f = next(f for f in dataclasses.fields(cfg)
                 if isinstance(f.default, (bool, int, float)))
        new_default = ((not f.default) if isinstance(f.default, bool) else
                       f.default // 2 if isinstance(f.default, int) else f.default / 2)
        changed = dataclasses.make_dataclass(
            "Changed", [(f.name, f.type, dataclasses.field(default=new_default,
                                                           metadata=f.metadata))],
            bases=(cfg,), frozen=True, namespace={"__module__": cfg.__module__})
        base = params_from(changed, RecordStageParams)
        info = base.model_fields[f.name]
        assert info.default == new_default and info.default is not PydanticUndefined
        assert info.description == f.metadata["description"]
        assert base(stage="x").scorer_config() == changed()
        assert base(stage="x").scorer_config() != cfg()


def test_bounds_and_strict_types_still_hold():
    with pytest.raises(ValidationError):
        GopherQualityParams(stage="gopher_quality", max_bullet_lines_frac=1.5)
    with pytest.raises(ValidationError):
        FineWebFilterParams(stage="fineweb_filter", short_line_chars=0)
    with pytest.raises(ValidationError):
        FineWebFilterParams(stage="fineweb_filter", line_end_punctuation="ascii")
    with pytest.raises(ValidationError):
        GopherQualityParams.model_validate_json('{"stage": "gopher_quality", "min_words": 1.5}',
                                                strict=True)
    p = GopherRepetitionParams(stage="gopher_repetition", max_top_ngram_char_frac={3: None})
    assert p.scorer_config().max_top_ngram_char_frac == ((3, None),)


def test_stage_field_overrides_must_name_a_field():
    with pytest.raises(TypeError, match="no fields"):
        params_from(FineWebConfig, language_colum={"default": "x"})


@pytest.mark.parametrize("stage_params, scorer, fields", [
    ("pipelines.stages.text.language_id:LanguageIdParams", "filters.langid:LanguageIdScorer",
     {"min_score": "min_score", "max_chars": "max_chars"}),
    ("pipelines.stages.filter.perplexity:PerplexityParams", "filters.ngram_lm:PerplexityScorer",
     {"max_chars": "max_chars", "max_perplexity": "max_perplexity"}),
])
def test_scorer_defaults_are_the_stage_defaults(stage_params, scorer, fields):
    """Stages whose scorer takes plain arguments use the scorer module's constants as their
    defaults: the two can not drift apart."""
    import importlib
    import inspect

    def load(ref):
        module, name = ref.split(":")
        return getattr(importlib.import_module(module), name)

    params, sig = load(stage_params), inspect.signature(load(scorer))
    for field, arg in fields.items():
        assert params.model_fields[field].default == sig.parameters[arg].default, field
