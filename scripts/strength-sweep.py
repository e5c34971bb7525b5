"""How far can the corruption strength move the demo's multiple-choice scores? A sweep, for README.

For the optimisation questions of a rails config's policy (training data: never the held-out evaluation
questions) that name a key term or entity, it scores the choices (as ``eco-rails optimize`` does) under each
strength of a fixed grid, with two corruption scopes:

* ``message``: the whole user message is corrupted (the demo's ``scope: span`` with the rail's flag);
* ``terms``: only the key terms and entity names inside it (:func:`eco_rails.strength.surrogate.term_spans`,
  the words the surrogate replaces), as ECO corrupts named entities.

and, for comparison, the clean model on the questions and on their surrogates (the same questions about
invented names, one per name draw). It writes the numbers as JSON and a plot of accuracy and probability of
the right choice against the strength.

    .venv/bin/python scripts/strength-sweep.py [rails-config-dir] [--out reports/strength-sweep-harry_potter]

About 3.5 minutes on 2 CPU cores for the demo (11 strengths, 2 scopes, 25 questions).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from eco_rails.atomic import write_bytes_atomic, write_text_atomic
from eco_rails.engine.flags import FlagDecision
from eco_rails.evaluation.scoring import score_choices
from eco_rails.rails.resolved import resolve_config
from eco_rails.strength.optimize import load_optimization_rows, policy_terms
from eco_rails.strength.surrogate import answer_probability, substitute_terms, term_spans

REPO = Path(__file__).resolve().parents[1]
STRENGTHS = (0.05, 0.1, 0.169, 0.3, 0.5, 1.0, 2.0, 4.0, 8.0, 17.5, 40.0)


def _summary(scored: list[tuple[float, bool]]) -> dict[str, float]:
    return {"accuracy": statistics.fmean(hit for _, hit in scored),
            "answer_probability": statistics.fmean(p for p, _ in scored)}


def sweep(config_dir: Path, strengths: tuple[float, ...] = STRENGTHS) -> dict[str, Any]:
    resolved = resolve_config(config_dir)
    policy = resolved.policy
    rows = load_optimization_rows(policy, resolved.policy_path)
    terms = policy_terms(policy)
    items = [(r, term_spans(r.prompt, terms)) for r in rows]
    items = [(r, spans) for r, spans in items if spans]
    engine = resolved.engine()
    chat = bool(resolved.main_model.parameters.get("chat_template", True))
    started = time.perf_counter()

    def scored(prompts: list[tuple[Any, str, list[str], list[str]]], flag_for: Any, spec: Any) -> list[tuple[float, bool]]:
        out = []
        for row, prompt, choices, spans in prompts:
            flag = flag_for(spans) if spec is not None else None
            s = score_choices(engine, prompt, choices, flag=flag, corruption=spec, use_chat_template=chat)
            out.append((answer_probability(s.normalized, row.answer), s.predicted() == row.answer))
        return out

    questions = [(r, r.prompt, list(r.choices), spans) for r, spans in items]
    result: dict[str, Any] = {
        "config": str(config_dir), "policy": policy.name, "policy_version": policy.version,
        "method": policy.corruption.method, "questions": len(items),
        "chance": statistics.fmean(1 / len(r.choices) for r, _ in items),
        "plain": _summary(scored(questions, None, None)),
    }
    references = []
    for seed in range(policy.optimization.surrogate_seeds):
        rng = random.Random(seed)
        pairs = []
        for r, _ in items:
            question, choices = substitute_terms(r.prompt, terms, rng, r.choices) or (r.prompt, list(r.choices))
            pairs.append((r, question, choices, []))
        references.append(_summary(scored(pairs, None, None)))
    result["surrogate_references"] = references
    scopes = {"message": lambda spans: FlagDecision.flag(), "terms": lambda spans: FlagDecision.flag(*spans)}
    result["sweep"] = []
    for strength in strengths:
        spec = policy.corruption.spec(learned_strength=strength)
        entry: dict[str, Any] = {"strength": strength}
        for scope, flag_for in scopes.items():
            entry[scope] = _summary(scored(questions, flag_for, spec))
        result["sweep"].append(entry)
        print(f"strength {strength:g}: " + ", ".join(
            f"{scope} acc {entry[scope]['accuracy']:.3f} p {entry[scope]['answer_probability']:.3f}" for scope in scopes),
            flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def plot(result: dict[str, Any], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [e["strength"] for e in result["sweep"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for ax, key, label in zip(axes, ("accuracy", "answer_probability"), ("MCQ accuracy", "p(right choice)")):
        for scope, style in (("message", "o-"), ("terms", "s--")):
            ax.plot(xs, [e[scope][key] for e in result["sweep"]], style, label=f"corrupt the {scope}")
        ax.axhline(result["plain"][key], color="black", lw=1, label="clean model")
        ax.axhline(statistics.fmean(r[key] for r in result["surrogate_references"]), color="green", lw=1, ls=":",
                   label="surrogate (invented names, clean)")
        ax.axhline(result["chance"], color="grey", lw=1, ls="-.", label="blind guess")
        ax.set_xscale("log")
        ax.set_xlabel("corruption strength (rand_noise)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{result['policy']} v{result['policy_version']}: {result['questions']} optimisation questions")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default=str(REPO / "rails_configs" / "harry_potter"))
    parser.add_argument("--out", default=str(REPO / "reports" / "strength-sweep-harry_potter"),
                        help="path without extension: writes .json and .png")
    args = parser.parse_args()
    result = sweep(Path(args.config))
    out = Path(args.out)
    write_text_atomic(out.with_suffix(".json"), json.dumps(result, indent=1) + "\n")
    plot(result, out.with_suffix(".png"))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
