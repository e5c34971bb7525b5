"""Run a fitted forget-policy classifier in ONNX Runtime.

``PromptClassifier.from_config(<rails-config-dir>)`` loads the artifact named by the config's
``custom_data.eco`` section, refuses it if the policy changed since it was fitted, and classifies prompts
with the CUDA execution provider when ONNX Runtime has one, else on the CPU. Long prompts are scored in
overlapping windows and the highest window decides, so in-scope text cannot hide after a long preamble.
Every failure raises an :class:`~eco_rails.errors.EcoRailsError` that a rail can fail closed on.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from eco_rails.classifier.artifact import ArtifactManifest, ensure_fresh, read_manifest
from eco_rails.classifier.backends import make_session
from eco_rails.classifier.key_terms import compile_terms, find_key_term
from eco_rails.classifier.text import normalize_for_classifier
from eco_rails.engine.flags import FlagDecision
from eco_rails.errors import ArtifactError, ClassifierInputError, ClassifierRuntimeError
from eco_rails.policy import ForgetPolicy

log = logging.getLogger(__name__)

_WINDOW_STRIDE = 32  # tokens shared by consecutive windows of a long prompt


__all__ = ["ClassifierDecision", "ClassifierInputError", "ClassifierRuntimeError", "PromptClassifier"]


class ClassifierDecision(BaseModel):
    """The classifier's verdict on one prompt."""

    model_config = ConfigDict(frozen=True)

    flagged: bool
    score: float  # the encoder's probability mass on the policy's targets, 1 - P(none)
    target: str | None  # matched or most likely target (also reported when not flagged, for audits)
    threshold: float
    key_term: str | None = None  # the policy key term found in the prompt, if any (flags on its own)

    @property
    def calibration_score(self) -> float:
        """The score conformal calibration ranks: a key-term hit outranks every encoder score."""
        return 2.0 if self.key_term else self.score


def _as_text(prompt: object, max_chars: int) -> str:
    if isinstance(prompt, (bytes, bytearray)):
        try:
            prompt = bytes(prompt).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ClassifierInputError(f"The prompt is not valid UTF-8 ({exc.reason} at byte {exc.start}); send UTF-8 text.") from None
    if not isinstance(prompt, str):
        raise ClassifierInputError(f"The prompt must be text, got {type(prompt).__name__}.")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError:
        raise ClassifierInputError("The prompt contains unpaired surrogate characters, so it is not valid UTF-8 text.") from None
    if len(prompt) > max_chars:
        raise ClassifierInputError(
            f"The prompt has {len(prompt):,} characters; the classifier accepts at most {max_chars:,} "
            "(classifier.max_prompt_chars in the policy)."
        )
    return normalize_for_classifier(prompt)


class PromptClassifier:
    """A calibrated forget-policy classifier. Thread-safe; implements :class:`~eco_rails.FlagDecider`."""

    def __init__(self, artifact_dir: str | Path, policy: ForgetPolicy | None = None, *, providers: list[str] | None = None) -> None:
        """Load the artifact in ``artifact_dir``.

        Args:
            artifact_dir: the folder ``eco-rails fit`` wrote (``manifest.json``, ``model.onnx``, tokenizer).
            policy: when given, the artifact must have been fitted for exactly this policy content.
            providers: ONNX Runtime execution providers (default: CUDA when available, then CPU).

        Raises:
            ArtifactError: missing, corrupt or unreadable manifest, ONNX file or tokenizer.
            StaleArtifactError: fitted for another version of ``policy``.
        """
        self.artifact_dir = Path(artifact_dir)
        self.manifest: ArtifactManifest = read_manifest(self.artifact_dir)
        if policy is not None:
            ensure_fresh(self.manifest, policy, self.artifact_dir)
        self.policy = policy
        onnx_path = self.artifact_dir / self.manifest.onnx_file
        if not onnx_path.is_file():
            raise ArtifactError(f"{onnx_path} is missing. Run `eco-rails fit <rails-config-dir>` to rebuild the artifact.")
        self.session = make_session(onnx_path, providers)
        self._input_names = {i.name for i in self.session.get_inputs()}
        self._key_terms = compile_terms(self.manifest.key_terms)
        try:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(self.artifact_dir, local_files_only=True)
        except Exception as exc:
            raise ArtifactError(f"The tokenizer in {self.artifact_dir} could not be loaded: {exc}. Re-run `eco-rails fit`.") from None
        self._lock = threading.Lock()  # fast tokenizers are not safe to call concurrently with padding settings

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config_dir: str | Path, *, check_stale: bool = True) -> PromptClassifier:
        """The classifier named by a rails config's ``custom_data.eco`` (policy and artifact).

        Raises:
            ConfigError: the folder is no rails config, or its ``custom_data.eco`` or policy is invalid.
            ArtifactError: the artifact is missing or unreadable; ``StaleArtifactError`` when it was fitted
                for another version of the policy (unless ``check_stale=False``).
        """
        # The one upward reference of this layer, for convenience: reading a rails config is the rails
        # layer's job (see the import-linter contract in pyproject.toml).
        from eco_rails.rails.resolved import resolve_config

        resolved = resolve_config(config_dir)
        return cls(resolved.artifact_path, resolved.policy if check_stale else None)

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    # ---- scoring ------------------------------------------------------------------------------
    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), n_labels)`` class probabilities; a long text takes its highest-scoring window.

        Each window runs on its own, unpadded. Dynamic int8 quantisation scales activations over the whole
        input tensor, so batching would let padding, or another user's prompt in the same batch, change
        this prompt's score; one-at-a-time scoring is what calibration measured and what every caller gets.
        """
        n_labels = len(self.manifest.labels)
        out = np.zeros((len(texts), n_labels))
        for i, text in enumerate(texts):
            with self._lock:  # the fast tokenizer's truncation state is shared
                enc = self.tokenizer(text, truncation=True, max_length=self.manifest.max_length, stride=_WINDOW_STRIDE,
                                     return_overflowing_tokens=True)
            best = -1.0
            for w in range(len(enc["input_ids"])):
                feeds = {k: np.asarray([enc[k][w]], dtype=np.int64) for k in self._input_names if k in enc}
                try:
                    logits = self.session.run(None, feeds)[0][0].astype(np.float64)
                except Exception as exc:
                    raise ClassifierRuntimeError(f"ONNX Runtime failed while classifying: {exc}") from exc
                probs = np.exp(logits - logits.max())
                probs /= probs.sum()
                if 1.0 - probs[0] > best:
                    best, out[i] = 1.0 - probs[0], probs
        return out

    def _decision(self, text: str, probs: np.ndarray) -> ClassifierDecision:
        score = float(1.0 - probs[0])
        target = self.manifest.labels[1 + int(np.argmax(probs[1:]))] if len(probs) > 1 else None
        term = find_key_term(text, self._key_terms)
        if term is not None:
            target = term.target
        return ClassifierDecision(flagged=term is not None or score > self.threshold, score=score, target=target,
                                  threshold=self.threshold, key_term=term.text if term else None)

    def classify_batch(self, prompts: Sequence[object]) -> list[ClassifierDecision]:
        """Classify several prompts (each scored on its own). Validates all of them before scoring any.

        Raises:
            ClassifierInputError: a prompt is not text, not UTF-8, or longer than ``max_prompt_chars``.
            ClassifierRuntimeError: ONNX Runtime failed (never read a failure as "not in scope").
        """
        texts = [_as_text(p, self.manifest.max_prompt_chars) for p in prompts]
        probs = self.scores([t or "." for t in texts])
        decisions = []
        for text, row in zip(texts, probs):
            if not text:  # nothing to forget in an empty prompt
                decisions.append(ClassifierDecision(flagged=False, score=0.0, target=None, threshold=self.threshold))
            else:
                decisions.append(self._decision(text, row))
        return decisions

    def classify(self, prompt: object) -> ClassifierDecision:
        """Classify one prompt (``str``, or UTF-8 ``bytes``).

        Returns:
            :class:`ClassifierDecision`: ``flagged`` (a key term matched, or the encoder score is above the
            calibrated threshold), the score, the most likely target and the key term found.

        Raises:
            ClassifierInputError, ClassifierRuntimeError: as :meth:`classify_batch`.
        """
        return self.classify_batch([prompt])[0]

    # ---- FlagDecider --------------------------------------------------------------------------
    def decide(self, messages: Sequence[dict[str, str]], max_history: int = 20) -> FlagDecision:
        """Decide for a chat (oldest message first). ``spans`` names every user text to corrupt:

        * the latest user message, if it is in scope on its own;
        * each earlier user message (up to ``max_history``) that is in scope on its own: it sits in the
          history the model reads, so it must not leak the knowledge either;
        * the latest message *and* the ``context_turns`` user messages before it, if only together they
          are in scope (a question split over turns: "I'm reading about Hogwarts." / "Which house is oldest?").
        """
        users = [m["content"] for m in messages if m.get("role") == "user" and m.get("content")]
        if not users:
            return FlagDecision.clean()
        latest, earlier = users[-1], users[:-1][-max_history:]
        window = earlier[len(earlier) - self.manifest.context_turns:] if self.manifest.context_turns and earlier else []
        candidates = [latest, *earlier] + (["\n".join([*window, latest])] if window else [])
        decisions = self.classify_batch(candidates)
        latest_d, earlier_d = decisions[0], decisions[1:1 + len(earlier)]
        spans: list[str] = [latest] if latest_d.flagged else []
        spans += [text for text, d in zip(earlier, earlier_d) if d.flagged]
        window_flagged = any(d.flagged for d in earlier_d[len(earlier) - len(window):])
        if window and not latest_d.flagged and not window_flagged and decisions[-1].flagged:
            spans += [*window, latest]  # only together in scope: a split question
        top = max((d for d in decisions if d.flagged), default=max(decisions, key=lambda d: d.score), key=lambda d: d.score)
        return FlagDecision(flagged=bool(spans), spans=tuple(dict.fromkeys(spans)), score=top.score, target=top.target,
                            threshold=self.threshold)
