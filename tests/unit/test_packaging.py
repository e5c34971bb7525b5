"""Packaging metadata that installs quietly: an SPDX license string (the table form makes setuptools print a
deprecation block on every install) and the license text shipped with the wheel."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def test_license_is_an_spdx_expression_with_its_text_in_the_wheel():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "Apache-2.0"
    assert meta["project"]["license-files"] == ["LICENSE"]
    assert "Apache License" in (REPO / "LICENSE").read_text()[:200]
    assert not any(c.startswith("License ::") for c in meta["project"].get("classifiers", [])), "SPDX and classifiers conflict"
    assert any(r.replace(" ", "").startswith("setuptools>=77") for r in meta["build-system"]["requires"]), \
        "setuptools reads SPDX license strings from 77 on"
