"""How often the demo classifier flags real questions outside its policy: the README's "On real questions
outside the policy" line. Reads ../shared/data (TOFU, KnowUnDo); prints counts per source.

    .venv/bin/python scripts/flag-rates-outside-policy.py [rails-config-dir]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from eco_rails.classifier.runtime import PromptClassifier

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def _questions(path: Path, key: str, limit: int | None = None) -> list[str]:
    rows = json.loads(path.read_text()) if path.suffix == ".json" else [json.loads(line) for line in path.open()]
    return [r[key] for r in rows][:limit]


def main() -> None:
    config = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "rails_configs" / "harry_potter"
    classifier = PromptClassifier.from_config(config)
    sources = {
        "TOFU world facts": _questions(DATA / "tofu" / "world_facts_perturbed.jsonl", "question"),
        "TOFU real authors": _questions(DATA / "tofu" / "real_authors_perturbed.jsonl", "question"),
        "TOFU fictitious authors (first 500)": _questions(DATA / "tofu" / "full.jsonl", "question", 500),
        "KnowUnDo privacy": _questions(DATA / "knowundo" / "privacy" / "full.json", "text"),
    }
    for name, questions in sources.items():
        decisions = classifier.classify_batch(questions)
        flagged = [q for q, d in zip(questions, decisions) if d.flagged]
        print(f"{name}: {len(flagged)} of {len(questions)} flagged")
        for q in flagged:
            print(f"    {q}")


if __name__ == "__main__":
    main()
