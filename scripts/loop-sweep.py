"""Which guard settings keep corrupted answers from looping? A sweep over the flagged answers' decoding, for README.

For the training-side forget prompts of a rails config's policy (its optimisation questions and its targets'
example prompts: never the held-out evaluation questions), it generates the corrupted answer the rail would
give (the rail's own corruption and learned strength, the config's decoding settings) under each setting of a
small grid of the flagged-only guards (``flagged_no_repeat_ngram_size``, ``flagged_repetition_ignore_case``,
``flagged_repetition_penalty``), and reports per setting the rates of empty answers, exact loops and paraphrase
loops (:mod:`eco_rails.evaluation.fluency`), and the median perplexity of the answers under the clean model
(the price of a guard: text that does not loop is less predictable).

    .venv/bin/python scripts/loop-sweep.py [rails-config-dir] [--stride N] [--out reports/loop-sweep-harry_potter]

About 6 minutes per setting on 2 CPU cores for the demo (every second of its 80 prompts, 128 tokens: about
8 s an answer).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from eco_rails.atomic import write_text_atomic
from eco_rails.engine.flags import FlagDecision
from eco_rails.engine.generation import GenerationSettings
from eco_rails.evaluation.fluency import is_empty, is_loop, is_paraphrase_loop
from eco_rails.evaluation.scoring import continuation_perplexity
from eco_rails.policy.learned import lookup_learned, model_identity
from eco_rails.rails.resolved import resolve_config
from eco_rails.strength.optimize import load_optimization_rows

REPO = Path(__file__).resolve().parents[1]
# (n-gram guard, ignore case, answer-only repetition penalty)
GRID: tuple[tuple[int, bool, float], ...] = ((4, False, 1.0), (4, False, 1.2), (4, False, 1.4))


def training_prompts(resolved: Any) -> list[str]:
    policy = resolved.policy
    prompts = [r.prompt for r in load_optimization_rows(policy, resolved.policy_path)]
    prompts += [e for t in policy.targets for e in t.examples]
    return list(dict.fromkeys(prompts))


def sweep(config_dir: Path, stride: int = 1, grid: tuple[tuple[int, bool, float], ...] = GRID) -> dict[str, Any]:
    resolved = resolve_config(config_dir)
    policy = resolved.policy
    main = resolved.main_model
    learned = lookup_learned(policy, resolved.policy_path, model_identity(main.model, main.parameters.get("adapter")))
    if learned.status != "learned":
        raise SystemExit(f"{learned.path}: {learned.detail}; run `eco-rails optimize {config_dir}` first")
    strength = next(iter(learned.strengths.values()))  # the rail takes its target's, and the demo has one target
    spec = policy.corruption.spec(learned_strength=strength)
    whole_prompt = policy.corruption.scope == "whole_prompt"
    engine = resolved.engine()
    prompts = training_prompts(resolved)[::stride]
    base = GenerationSettings.from_parameters(resolved.main_model.parameters, source=f"{config_dir}: models[].parameters",
                                              temperature=0.0, stop=())
    flag = FlagDecision.flag(whole_prompt=whole_prompt)
    rows = []
    for ngram, fold, penalty in grid:
        started = time.perf_counter()
        settings = base.model_copy(update={"flagged_no_repeat_ngram_size": ngram, "flagged_repetition_ignore_case": fold,
                                           "flagged_repetition_penalty": penalty})
        texts = [engine.generate(p, flag=flag, corruption=spec, settings=settings).text for p in prompts]
        ppl = [continuation_perplexity(engine, p, t) for p, t in zip(prompts, texts)]
        rows.append({
            "flagged_no_repeat_ngram_size": ngram, "flagged_repetition_ignore_case": fold,
            "flagged_repetition_penalty": penalty,
            "empty_rate": statistics.fmean(is_empty(t) for t in texts),
            "loop_rate": statistics.fmean(is_loop(t) for t in texts),
            "paraphrase_loop_rate": statistics.fmean(is_paraphrase_loop(t) for t in texts),
            "median_perplexity": statistics.median(x for x in ppl if x == x),
            "seconds": round(time.perf_counter() - started, 1),
            "samples": [{"prompt": p, "answer": t} for p, t in list(zip(prompts, texts))[:4]],
        })
        r = rows[-1]
        print(f"ngram {ngram} fold {fold!s:5} penalty {penalty:.2f}: empty {r['empty_rate']:.3f} loops {r['loop_rate']:.3f} "
              f"paraphrase {r['paraphrase_loop_rate']:.3f} ppl {r['median_perplexity']:.2f} ({r['seconds']} s)", flush=True)
    return {"config": str(config_dir.relative_to(REPO) if config_dir.is_relative_to(REPO) else config_dir),
            "policy": policy.name, "policy_version": policy.version, "prompts": len(prompts),
            "strength": spec.strength, "max_new_tokens": base.max_new_tokens, "settings": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", type=Path, default=REPO / "rails_configs" / "harry_potter")
    parser.add_argument("--stride", type=int, default=2, help="every Nth prompt (1: all 80 of the demo)")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "loop-sweep-harry_potter")
    args = parser.parse_args()
    result = sweep(args.config.resolve(), args.stride)
    write_text_atomic(args.out.with_suffix(".json"), json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
