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
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from eco_rails.classifier.artifact import ArtifactManifest, ensure_fresh, read_manifest
from eco_rails.classifier.backends import make_session
from eco_rails.classifier.conversation import changes_subject, refers_back
from eco_rails.classifier.key_terms import compile_terms, find_key_terms
from eco_rails.classifier.text import normalize_for_classifier
from eco_rails.classifier.views import MAX_VIEW_CHARS, build_views
from eco_rails.engine.flags import FlagDecision
from eco_rails.errors import ArtifactError, ClassifierInputError, ClassifierRuntimeError
from eco_rails.policy import ForgetPolicy

log = logging.getLogger(__name__)

_WINDOW_STRIDE = 32  # tokens shared by consecutive windows of a long prompt


__all__ = ["ClassifierDecision", "ClassifierInputError", "ClassifierRuntimeError", "PromptClassifier"]


Evidence = Literal["none", "ambiguous", "distinctive"]
_CACHE_SIZE = 4096  # scored texts kept per classifier (chat history is re-read every turn)


class ClassifierDecision(BaseModel):
    """The classifier's verdict on one prompt."""

    model_config = ConfigDict(frozen=True)

    flagged: bool
    score: float  # the encoder's probability mass on the policy's targets, 1 - P(none), highest over the views
    target: str | None  # matched or most likely target (also reported when not flagged, for audits)
    threshold: float  # the threshold that applied: the ambiguous-term one when such a term was found
    key_term: str | None = None  # the policy key term found in the prompt, if any
    evidence: Evidence = "none"  # distinctive key terms flag on their own; ambiguous ones need the encoder
    view: str = "text"  # which view of the prompt decided (text, base64, shift, joined, sentence, ...)
    views: int = 1  # encoder passes made for this prompt


def applicable_threshold(evidence: Evidence, threshold: float, ambiguous_threshold: float) -> float:
    """The encoder threshold that applies to a prompt with this key-term evidence."""
    return ambiguous_threshold if evidence == "ambiguous" else threshold


def flag_rule(evidence: Evidence, score: float, threshold: float, ambiguous_threshold: float) -> bool:
    """The decision rule, shared by the runtime and by fit's calibration report: a distinctive key term flags on
    its own; otherwise the encoder score must exceed the threshold that applies to the evidence."""
    return evidence == "distinctive" or score > applicable_threshold(evidence, threshold, ambiguous_threshold)


def vocabulary_of(tokenizer: Any) -> frozenset[str]:
    """The whole words (2+ ASCII letters) a tokenizer knows: what "reads like language" and what a real word
    is, for views and key-term matching."""
    words = (w.lstrip("▁Ġ").lower() for w in tokenizer.get_vocab())
    return frozenset(w for w in words if len(w) >= 2 and w.isascii() and w.isalpha())


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
    return prompt


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
        ambiguous = [t for terms in self.manifest.ambiguous_terms.values() for t in terms]
        self._key_terms = compile_terms(self.manifest.key_terms, ambiguous=ambiguous)
        try:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(self.artifact_dir, local_files_only=True)
        except Exception as exc:
            raise ArtifactError(f"The tokenizer in {self.artifact_dir} could not be loaded: {exc}. Re-run `eco-rails fit`.") from None
        self._lock = threading.Lock()  # fast tokenizers are not safe to call concurrently with padding settings
        self.vocabulary = vocabulary_of(self.tokenizer)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

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
        """Encoder threshold for prompts without a key term."""
        return self.manifest.threshold

    @property
    def ambiguous_threshold(self) -> float:
        """Encoder threshold for prompts with an ambiguous key term, calibrated on the policy's homonyms (it
        can sit above or below :attr:`threshold`: homonyms are the hardest negatives)."""
        value = self.manifest.ambiguous_threshold
        return self.threshold if value is None else value

    @property
    def context_threshold(self) -> float:
        """Encoder threshold above which a message after an in-scope turn counts as staying on its topic."""
        value = self.manifest.context_threshold
        return self.threshold if value is None else value

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    # ---- scoring ------------------------------------------------------------------------------
    def _probs(self, text: str) -> np.ndarray:
        """Class probabilities of one text (a long one takes its highest-scoring window); cached.

        Each window runs on its own, unpadded. Dynamic int8 quantisation scales activations over the whole
        input tensor, so batching would let padding, or another user's prompt in the same batch, change
        this prompt's score; one-at-a-time scoring is what calibration measured and what every caller gets.
        """
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                return cached
            enc = self.tokenizer(text, truncation=True, max_length=self.manifest.max_length, stride=_WINDOW_STRIDE,
                                 return_overflowing_tokens=True)
        best, out = -1.0, np.zeros(len(self.manifest.labels))
        for w in range(len(enc["input_ids"])):
            feeds = {k: np.asarray([enc[k][w]], dtype=np.int64) for k in self._input_names if k in enc}
            try:
                logits = self.session.run(None, feeds)[0][0].astype(np.float64)
            except Exception as exc:
                raise ClassifierRuntimeError(f"ONNX Runtime failed while classifying: {exc}") from exc
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            if 1.0 - probs[0] > best:
                best, out = 1.0 - probs[0], probs
        with self._lock:
            self._cache[text] = out
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return out

    def clear_cache(self) -> None:
        """Forget the scores of texts seen before (benchmarks measure scoring, not cache hits)."""
        with self._lock:
            self._cache.clear()

    def _classify_text(self, text: str) -> ClassifierDecision:
        views = build_views(text, self.vocabulary)
        hits = [(view, term) for view in views for term in find_key_terms(view.text, self._key_terms, self.vocabulary)]
        distinctive = next(((v, t) for v, t in hits if not t.ambiguous), None)
        ambiguous = next(((v, t) for v, t in hits if t.ambiguous), None)
        evidence: Evidence = "distinctive" if distinctive else "ambiguous" if ambiguous else "none"
        hit = distinctive or ambiguous
        threshold = applicable_threshold(evidence, self.threshold, self.ambiguous_threshold)
        budget = self.manifest.max_views
        best, best_probs, best_view, passes = -1.0, None, views[0].kind, 0
        for view in views:
            if passes >= budget:
                break
            probs = self._probs(view.text[:MAX_VIEW_CHARS])  # long texts are covered by their sentence views
            passes += 1
            score = float(1.0 - probs[0])
            if score > best:
                best, best_probs, best_view = score, probs, view.kind
            if flag_rule(evidence, best, self.threshold, self.ambiguous_threshold):
                break  # the decision cannot change any more
        assert best_probs is not None
        target = self.manifest.labels[1 + int(np.argmax(best_probs[1:]))] if len(best_probs) > 1 else None
        if hit is not None:
            target = hit[1].target
        flagged = flag_rule(evidence, best, self.threshold, self.ambiguous_threshold)
        view_kind = hit[0].kind if evidence == "distinctive" and hit is not None else best_view
        return ClassifierDecision(flagged=flagged, score=best, target=target, threshold=threshold,
                                  key_term=hit[1].text if hit else None, evidence=evidence, view=view_kind, views=passes)

    def classify_batch(self, prompts: Sequence[object]) -> list[ClassifierDecision]:
        """Classify several prompts (each on its own). Validates all of them before scoring any.

        Raises:
            ClassifierInputError: a prompt is not text, not UTF-8, or longer than ``max_prompt_chars``.
            ClassifierRuntimeError: ONNX Runtime failed (never read a failure as "not in scope").
        """
        texts = [_as_text(p, self.manifest.max_prompt_chars) for p in prompts]
        return [self._classify_text(t) if normalize_for_classifier(t) else
                ClassifierDecision(flagged=False, score=0.0, target=None, threshold=self.threshold, views=0)
                for t in texts]

    def classify(self, prompt: object) -> ClassifierDecision:
        """Classify one prompt (``str``, or UTF-8 ``bytes``).

        The prompt is read through bounded views that undo encodings (base64, hex, URL escapes, letter
        shifts, reversal), spelled-out and look-alike letters, leetspeak and wrappers, and sentence by
        sentence; it is in scope if a distinctive key term occurs in any view, or the encoder's highest score
        over the views is above the calibrated threshold (a lower one when an ambiguous key term occurs).

        Returns:
            :class:`ClassifierDecision`: ``flagged``, the score, the most likely target, the key term found,
            its evidence class, the deciding view and the number of encoder passes.

        Raises:
            ClassifierInputError, ClassifierRuntimeError: as :meth:`classify_batch`.
        """
        return self.classify_batch([prompt])[0]

    # ---- FlagDecider --------------------------------------------------------------------------
    def decide(self, messages: Sequence[dict[str, str]], max_history: int = 20) -> FlagDecision:
        """Decide for a chat (oldest message first). ``spans`` names every user text to corrupt.

        The user messages (the latest and up to ``max_history`` before it) are read in order, each with the
        ``context_turns`` user messages before it, and a message is in scope when

        * it is in scope on its own;
        * it follows an in-scope message among the ``context_turns`` before it and *refers back* (pronouns,
          ellipsis, "the game": "What house is she in?"), or stays near the topic without announcing a new one
          (its score is above the looser ``context_threshold``: "Which house is the oldest?"). Follow-ups chain:
          "Tell me about Dumbledore." / "How old is he?" / "And his brother?" are all in scope;
        * only together with the ``context_turns`` messages before it it is in scope (a question split over
          turns: "... called Goblet" / "of Fire. Who wins it?"): then those messages are in scope too.

        Every in-scope message is corrupted, earlier ones included: they sit in the history the model reads, so
        they must not leak the knowledge either. A message is judged the same whether it is the latest or not.
        """
        users = [m["content"] for m in messages if m.get("role") == "user" and m.get("content")][-(max_history + 1):]
        if not users:
            return FlagDecision.clean()
        decisions = self.classify_batch(users)
        turns = self.manifest.context_turns
        in_scope = [d.flagged for d in decisions]
        chosen = [d for d in decisions if d.flagged]
        for i, (text, own) in enumerate(zip(users, decisions)):
            window = list(range(max(0, i - turns), i))
            if own.flagged or not window:
                continue
            anchor = next((decisions[j] for j in reversed(window) if in_scope[j]), None)
            if anchor is not None:
                if refers_back(text) or (own.score > self.context_threshold and not changes_subject(text)):
                    # a follow-up to an in-scope turn: it points back, or it stays near the topic ("Which house is
                    # the oldest?") rather than opening one of its own ("How do I bake sourdough?")
                    in_scope[i] = True
                    chosen.append(anchor)
                continue
            # only together in scope: a question split over turns ("... called Goblet" / "of Fire. ..."), read as
            # one text: a distinctive key term across the join, or the encoder on the whole
            joint_text = normalize_for_classifier("\n".join(users[j] for j in [*window, i]))
            coined = any(not t.ambiguous for t in find_key_terms(joint_text, self._key_terms, self.vocabulary))
            joint = float(1.0 - self._probs(joint_text[:MAX_VIEW_CHARS])[0])
            if coined or joint > self.threshold:
                for j in [*window, i]:
                    in_scope[j] = True
                chosen.append(own.model_copy(update={"score": joint, "flagged": True}))
        spans = tuple(dict.fromkeys(text for text, flag in zip(users, in_scope) if flag))
        top = max(chosen, default=max(decisions, key=lambda d: d.score), key=lambda d: d.score)
        return FlagDecision(flagged=bool(spans), spans=spans, score=top.score, target=top.target, threshold=top.threshold)
