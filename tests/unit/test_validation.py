"""eco_rails.validation: one readable line per validation error, at every configuration boundary."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eco_rails.validation import format_validation_error


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strength: float = Field(ge=0)


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    inner: Inner
    items: list[str] = Field(min_length=1)
    targets: list[Inner] = []


def errors_of(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        Outer.model_validate(data)
    return info.value


BAD = {"inner": {"strength": -1, "sigma": 2}, "items": [], "nmae": "x"}


def test_one_line_per_error_under_a_title():
    exc = errors_of(BAD)
    text = format_validation_error(exc)
    title, *lines = text.splitlines()
    assert title == "Invalid configuration:"
    assert len(lines) == len(exc.errors()) == 5
    assert all(line.startswith("  ") and line.count("\n") == 0 for line in lines)


def test_paths_are_dotted_and_prefixed_with_the_validated_object():
    text = format_validation_error(errors_of({**BAD, "targets": [{"strength": 1}, {"strength": -2}]}), "custom_data.eco")
    paths = [line.strip().split(":")[0] for line in text.splitlines()[1:]]
    assert paths == ["custom_data.eco.name", "custom_data.eco.inner.strength", "custom_data.eco.inner.sigma",
                     "custom_data.eco.items", "custom_data.eco.targets.1.strength", "custom_data.eco.nmae"]


def test_each_line_says_what_was_given_and_how_to_fix_it():
    lines = [line.strip() for line in format_validation_error(errors_of(BAD)).splitlines()[1:]]
    assert "name: Field required; add it" in lines  # a missing field shows no value
    assert "inner.strength: Input should be greater than or equal to 0 (got -1); use a larger value" in lines
    assert "inner.sigma: Extra inputs are not permitted (got 2); remove it or check its spelling" in lines
    assert any(line.startswith("items: List should have at least 1 item") and line.endswith("(got []); add at least one entry")
               for line in lines)


def test_callers_can_add_their_own_fixes_and_hints():
    def hint(err: dict) -> str | None:
        return "try 0.5" if err["loc"] == ("inner", "strength") else None

    text = format_validation_error(errors_of(BAD), title="Bad policy", fixes={"missing": "name the policy"}, hint=hint)
    assert text.startswith("Bad policy:\n")
    assert "  name: Field required; name the policy" in text.splitlines()
    assert "  inner.strength: Input should be greater than or equal to 0 (got -1); try 0.5" in text.splitlines()


def test_long_values_are_shortened_and_top_level_errors_are_named():
    text = format_validation_error(errors_of({**BAD, "nmae": "x" * 500}))
    line = next(line for line in text.splitlines() if "nmae" in line)
    assert len(line) < 200 and "x" * 80 in line and "x" * 81 not in line
    top = format_validation_error(errors_of([1]))
    assert top.splitlines()[1].strip().startswith("(top level): Input should be a valid dictionary")


def test_an_unknown_key_gets_the_nearest_valid_key_and_the_list_of_valid_ones_at_its_own_depth():
    text = format_validation_error(errors_of({"name": "x", "inner": {"strength": 1, "strenght": 2}, "items": ["a"],
                                              "targets": [{"strength": 1, "strengh": 2}], "itemz": []}), model=Outer)
    assert "inner.strenght: Extra inputs are not permitted (got 2); did you mean `strength`? valid keys here: strength" in text
    assert "targets.0.strengh: Extra inputs are not permitted (got 2); did you mean `strength`?" in text
    assert "itemz: Extra inputs are not permitted (got []); did you mean `items`? valid keys here: inner, items, name, targets" in text


def test_a_key_like_no_valid_one_lists_the_valid_keys_without_guessing():
    text = format_validation_error(errors_of({"name": "x", "inner": {"strength": 1}, "items": ["a"], "colour": 1}), model=Outer)
    assert "colour: Extra inputs are not permitted (got 1); remove it or check its spelling; valid keys here:" in text
    assert "did you mean" not in text


def test_a_typo_in_a_real_policy_and_rail_setting_names_the_intended_key(tmp_path):
    from pathlib import Path

    import yaml

    from eco_rails.errors import ConfigError
    from eco_rails.policy import load_policy
    from eco_rails.rails.rail_config import parse_eco_settings

    data = yaml.safe_load((Path(__file__).parents[1] / "configs" / "wizard_school" / "policy.yml").read_text())
    data["targets"][0]["key_term"] = data["targets"][0].pop("key_terms", ["Wizard School"])
    (tmp_path / "policy.yml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"targets\.0\.key_term: .*did you mean `key_terms`\? valid keys here: description, "):
        load_policy(tmp_path / "policy.yml")
    with pytest.raises(ConfigError, match=r"custom_data\.eco\.on_flagg: .*did you mean `on_flag`\? valid keys here: artifact, "
                                          r"audit_prompts, on_flag, policy$"):
        parse_eco_settings({"eco": {"on_flagg": "refuse"}}, tmp_path)
