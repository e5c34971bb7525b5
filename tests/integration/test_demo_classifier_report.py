"""README's classifier numbers rebuild: a fresh fit of the demo policy gives the committed report's numbers.

`reports/classifier-harry_potter.json` is what README's calibration table quotes (tests/unit/test_readme_numbers.py
checks README against it). In a fresh clone the `hp_artifact` fixture fits the demo policy from scratch, so this
compares a fresh fit with the committed one, at the precision README shows (rates 3 decimals, thresholds 4).
"""

from __future__ import annotations

import json

from tests.conftest import REPO

REPORT = REPO / "reports" / "classifier-harry_potter.json"
FIX = "re-fit, run `scripts/classifier-report.py` and update README where tests/unit/test_readme_numbers.py says"


def _rates(metrics: dict) -> dict[str, object]:
    """Every number of the fit's metrics, flattened, rates and quantiles rounded as README shows them."""
    flat: dict[str, object] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}", item)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(f"{prefix}[{i}]", item)
        elif isinstance(value, float):
            flat[prefix] = round(value, 3)
        else:
            flat[prefix] = value

    walk("metrics", metrics)
    return flat


def test_a_fresh_fit_of_the_demo_policy_reproduces_the_committed_report(hp_artifact):
    committed = json.loads(REPORT.read_text())["fit"]
    fresh = json.loads((hp_artifact / "manifest.json").read_text())
    assert fresh["policy_hash"] == committed["policy_hash"], f"the demo policy changed since the report: {FIX}"
    for key in ("threshold", "ambiguous_threshold", "context_threshold"):
        assert round(fresh[key], 4) == round(committed[key], 4), (key, fresh[key], committed[key], FIX)
    fresh_rates, committed_rates = _rates(fresh["metrics"]), _rates(committed["metrics"])
    moved = {k: (committed_rates.get(k), v) for k, v in fresh_rates.items() if committed_rates.get(k) != v}
    assert not moved, f"a fresh fit moved these numbers (committed, fresh): {moved}; {FIX}"
