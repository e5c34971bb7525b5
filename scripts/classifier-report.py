"""The demo classifier's committed report, `reports/classifier-harry_potter.json`: what README's classifier
section quotes. It holds the fit's own numbers, copied from the artifact's `manifest.json` (thresholds,
calibration, test split and adversarial-suite rates, score quantiles), and how often the classifier flags
real questions outside its policy (the TOFU and KnowUnDo copies packaged with the benchmarks).

    .venv/bin/python scripts/classifier-report.py [rails-config-dir] [--out reports/classifier-harry_potter.json]

Run it after re-fitting the demo policy, then update README where tests/unit/test_readme_numbers.py says a
number moved. tests/integration/test_demo_classifier_report.py checks that a fresh fit reproduces the committed
numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eco_rails.atomic import write_text_atomic
from eco_rails.benchmarks.data import DATA_DIR as DATA
from eco_rails.classifier.runtime import PromptClassifier

REPO = Path(__file__).resolve().parents[1]
FIT_FIELDS = ("policy_name", "policy_version", "policy_hash", "backbone", "quantization", "seed", "target_fpr",
              "threshold", "ambiguous_threshold", "context_threshold", "metrics")


def _questions(path: Path, key: str, limit: int | None = None) -> list[str]:
    rows = json.loads(path.read_text()) if path.suffix == ".json" else [json.loads(line) for line in path.open()]
    return [r[key] for r in rows][:limit]


def outside_policy(classifier: PromptClassifier) -> dict[str, dict]:
    sources = {
        "tofu_world_facts": (DATA / "tofu" / "world_facts_perturbed.jsonl", "question", None),
        "tofu_real_authors": (DATA / "tofu" / "real_authors_perturbed.jsonl", "question", None),
        "tofu_fictitious_authors_first_500": (DATA / "tofu" / "full.jsonl", "question", 500),
        "knowundo_privacy": (DATA / "knowundo" / "privacy" / "full.json", "text", None),
    }
    rates = {}
    for name, (path, key, limit) in sources.items():
        questions = _questions(path, key, limit)
        flagged = [q for q, d in zip(questions, classifier.classify_batch(questions)) if d.flagged]
        rates[name] = {"n": len(questions), "flagged": len(flagged), "flagged_questions": flagged}
        print(f"{name}: {len(flagged)} of {len(questions)} flagged")
        for q in flagged:
            print(f"    {q}")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", type=Path, default=REPO / "rails_configs" / "harry_potter")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "classifier-harry_potter.json")
    args = parser.parse_args()
    classifier = PromptClassifier.from_config(args.config)  # reads and validates the artifact's manifest
    manifest = classifier.manifest.model_dump(mode="json")
    report = {"fit": {k: manifest[k] for k in FIT_FIELDS}, "outside_policy": outside_policy(classifier),
              "command": "scripts/classifier-report.py"}
    write_text_atomic(args.out, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
