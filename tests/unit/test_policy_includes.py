"""Long policy lists live in their own files; entities, homonyms and neighbours are validated like the rest."""

from __future__ import annotations

import pytest
import yaml

from eco_rails.errors import ConfigError
from eco_rails.policy import load_policy

BASE = {"name": "wizards", "version": "1", "targets": [{"id": "hp", "description": "d", "examples": ["Who is Harry?"]}]}


def write(tmp_path, policy: dict, **files: str):
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    return path


def test_lists_can_be_read_from_files_next_to_the_policy(tmp_path):
    policy = {**BASE, "homonyms": "homonyms.txt", "keep_entities": "neighbours.yml",
              "targets": [{**BASE["targets"][0], "entities": "entities.yml"}]}
    path = write(tmp_path, policy,
                 **{"homonyms.txt": "# real things\nHow do potters centre clay?\n\nWhat is the star Sirius?\n",
                    "entities.yml": yaml.safe_dump([{"name": "Harry Potter", "aliases": ["Гарри Поттер"],
                                                     "descriptions": ["the boy wizard with a scar"]}], allow_unicode=True),
                    "neighbours.yml": yaml.safe_dump({"keep_entities": [{"name": "Gandalf", "descriptions": ["the grey wizard"]}]})})
    loaded = load_policy(path)
    assert loaded.homonyms == ["How do potters centre clay?", "What is the star Sirius?"]
    assert loaded.targets[0].entities[0].aliases == ["Гарри Поттер"]
    assert loaded.targets[0].all_terms() == ["Harry Potter", "Гарри Поттер"]
    assert loaded.keep_entities[0].name == "Gandalf"
    before = loaded.content_hash()
    (tmp_path / "homonyms.txt").write_text("How do potters centre clay?\n", encoding="utf-8")
    assert load_policy(path).content_hash() != before, "editing an included file makes the artifact stale"


def test_a_missing_included_file_names_the_field_and_the_file(tmp_path):
    path = write(tmp_path, {**BASE, "homonyms": "nowhere.txt"})
    with pytest.raises(ConfigError, match=r"homonyms: the file 'nowhere.txt' does not exist"):
        load_policy(path)


def test_a_bad_entity_names_its_field(tmp_path):
    policy = {**BASE, "targets": [{**BASE["targets"][0], "entities": [{"name": "Hogwarts", "descripton": ["a school"]}]}]}
    with pytest.raises(ConfigError, match=r"targets\.0\.entities\.0\.descripton: Extra inputs are not permitted"):
        load_policy(write(tmp_path, policy))


def test_the_demo_config_folder_still_loads_in_nemo_guardrails():
    """NeMo reads every .yml file in a rails config folder: the policy's included files must not break it."""
    from pathlib import Path

    from nemoguardrails import RailsConfig

    config = RailsConfig.from_path(str(Path(__file__).resolve().parents[2] / "rails_configs" / "harry_potter"))
    assert config.custom_data["eco"]["policy"] == "policy.yml"
