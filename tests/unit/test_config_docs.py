"""docs/configuration.md is what the config schema's descriptions make it, and every field of
the schema has a description."""

from __future__ import annotations

from pydantic import BaseModel, Field

from cluster import config_docs
from deployments.core.config import AppConfig, Batching


def test_docs_configuration_is_what_the_generator_writes():
    assert config_docs.OUTPUT.read_text() == config_docs.render(), (
        "docs/configuration.md is stale: run python -m cluster.config_docs")
    assert config_docs.main(["--check"]) == 0


def test_every_field_and_settings_class_has_a_description():
    assert config_docs.undocumented() == []


def test_a_field_without_a_description_is_found():
    class Inner(BaseModel):
        """Documented."""

        size: int = 3

    class Outer(BaseModel):
        inner: Inner = Field(default_factory=Inner, description="the inner part")

    assert config_docs.undocumented(Outer) == ["Outer", "Inner.size"]


def test_a_changed_description_makes_the_docs_stale(monkeypatch):
    field = AppConfig.model_fields["model_dir"]
    monkeypatch.setattr(field, "description", "somewhere else")
    assert config_docs.OUTPUT.read_text() != config_docs.render()
    assert config_docs.main(["--check"]) == 1


def test_every_field_is_in_its_class_table_with_the_code_default():
    rows = config_docs.reference().splitlines()
    for model in config_docs.sections():
        table = config_docs.section(model, []).splitlines()
        for name in config_docs.own_fields(model):
            assert any(line.startswith(f"| `{name}` |") for line in table), (model, name)
    batch_rows = [line for line in rows if line.startswith("| `max_batch_size` |")]
    assert batch_rows == [f"| `max_batch_size` | int, >= 1, <= 1024 | "
                          f"`{Batching().max_batch_size}` | "
                          f"{Batching.model_fields['max_batch_size'].description} |"]
    assert "`max_batch_size: 16`" in config_docs.section(
        type(AppConfig().vision), ["vision"])


def test_types_bounds_and_defaults_read_as_a_profile_writes_them():
    engine = config_docs.section(type(AppConfig().text.engine), ["text.engine"])
    assert '| `attention` | `"auto"` \\| `"sdpa"` \\| `"eager"` | `"auto"` |' in engine
    assert "| `max_model_len` | int or null, >= 16 | unset |" in engine
