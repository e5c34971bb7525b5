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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from eco_rails.classifier.artifact import ArtifactManifest, ensure_fresh, read_manifest
from eco_rails.classifier.backends import make_session
from eco_rails.classifier.batching import BUCKET, MAX_BATCH, Coalescer, group_by_bucket, pad_windows
from eco_rails.classifier.conversation import changes_subject, refers_back
from eco_rails.classifier.key_terms import KeyTerm, compile_terms, find_standalone_terms
from eco_rails.classifier.text import normalize_for_classifier
from eco_rails.classifier.views import MAX_VIEW_CHARS, View, build_views
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


@dataclass
class _Reading:
    """One prompt being read view by view (see :meth:`PromptClassifier._classify_texts`)."""

    views: list[View]
    evidence: Evidence = "none"
    hit: tuple[View, KeyTerm] | None = None
    best: float = -1.0
    best_probs: np.ndarray | None = None
    best_view: str = "text"
    passes: int = 0
    decided: bool = False


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
        self._exceptions = compile_terms({"": self.manifest.exception_names})
        try:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(self.artifact_dir, local_files_only=True)
        except Exception as exc:
            raise ArtifactError(f"The tokenizer in {self.artifact_dir} could not be loaded: {exc}. Re-run `eco-rails fit`.") from None
        self._lock = threading.Lock()  # fast tokenizers are not safe to call concurrently with padding settings
        self.vocabulary = vocabulary_of(self.tokenizer)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        if self.manifest.quantization == "int8-dynamic":
            # activation ranges measured per call: scored one window at a time, unpadded, as it was calibrated
            self._bucket, self._max_batch = 1, 1
            log.info("%s is quantised dynamically (an older eco-rails fit): prompts are scored one at a time. "
                     "Re-run `eco-rails fit` for batched scoring.", onnx_path)
        elif self.session.get_providers()[0] != "CPUExecutionProvider":
            # GPU GEMM libraries pick kernels by shape, so a batch's size could move a row's numbers; batch
            # invariance is measured on the CPU provider only: score one window at a time here until it is
            self._bucket, self._max_batch = BUCKET, 1
        else:
            self._bucket, self._max_batch = BUCKET, MAX_BATCH
        self._coalescer: Coalescer[dict[str, list[int]], np.ndarray] = Coalescer(self._score_windows, self._max_batch)

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
    def _encode(self, text: str) -> list[dict[str, list[int]]]:
        """The tokenised windows of one text (a long text overlaps its windows by ``_WINDOW_STRIDE`` tokens)."""
        with self._lock:
            enc = self.tokenizer(text, truncation=True, max_length=self.manifest.max_length, stride=_WINDOW_STRIDE,
                                 return_overflowing_tokens=True)
        names = [k for k in self._input_names if k in enc]
        return [{k: list(enc[k][w]) for k in names} for w in range(len(enc["input_ids"]))]

    def _score_windows(self, windows: list[dict[str, list[int]]]) -> list[np.ndarray]:
        """Logits of tokenised windows: one ONNX Runtime call per bucket (see :mod:`~.batching`)."""
        out: list[np.ndarray] = [np.empty(0)] * len(windows)
        lengths = [len(w["input_ids"]) for w in windows]
        for length, rows in group_by_bucket(lengths, self._bucket, self._max_batch):
            feeds = pad_windows([windows[i] for i in rows], length, self._pad_id)
            try:
                logits = self.session.run(None, feeds)[0]
            except Exception as exc:
                raise ClassifierRuntimeError(f"ONNX Runtime failed while classifying: {exc}") from exc
            if not np.isfinite(logits).all():  # never read a broken model as "not in scope"
                raise ClassifierRuntimeError(f"The classifier {self.artifact_dir} returned non-finite scores; re-run `eco-rails fit`.")
            for r, i in enumerate(rows):
                out[i] = np.asarray(logits[r], dtype=np.float64)
        return out

    def _probs_many(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Class probabilities of each text (a long one takes its highest-scoring window); cached.

        The windows of all uncached texts are scored together, and together with those of concurrent callers
        (:class:`~.batching.Coalescer`); a text's probabilities do not depend on what it is batched with.
        """
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                cached = self._cache.get(text)
                if cached is not None:
                    self._cache.move_to_end(text)
                    found[text] = cached
        todo = [t for t in dict.fromkeys(texts) if t not in found]
        windows = [(t, w) for t in todo for w in self._encode(t)]
        logits = self._coalescer.submit([w for _, w in windows]) if windows else []
        best: dict[str, float] = {}
        for (text, _), row in zip(windows, logits):
            probs = np.exp(row - row.max())
            probs /= probs.sum()
            if 1.0 - probs[0] > best.get(text, -1.0):
                best[text], found[text] = 1.0 - probs[0], probs
        with self._lock:
            for text in todo:
                self._cache[text] = found[text]
                if len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return [found[t] for t in texts]

    def _probs(self, text: str) -> np.ndarray:
        return self._probs_many([text])[0]

    @property
    def batching(self) -> dict[str, float]:
        """How scoring batches: windows per ONNX Runtime call at most, batches run and their mean size."""
        c = self._coalescer
        return {"max_batch": c.max_batch, "batches": c.batches, "mean_batch": c.items / c.batches if c.batches else 0.0}

    def clear_cache(self) -> None:
        """Forget the scores of texts seen before (benchmarks measure scoring, not cache hits)."""
        with self._lock:
            self._cache.clear()

    def _classify_texts(self, texts: Sequence[str]) -> list[ClassifierDecision]:
        """Read every text through its views, scoring round by round: round k scores the k-th view of every
        text still undecided, in one batch. Each text stops at the view that decides it, as if read alone."""
        readings = [_Reading(views=build_views(t, self.vocabulary)) for t in texts]
        for reading in readings:
            hits = [(view, term) for view in reading.views
                    for term in find_standalone_terms(view.text, self._key_terms, self._exceptions, self.vocabulary)]
            distinctive = next(((v, t) for v, t in hits if not t.ambiguous), None)
            ambiguous = next(((v, t) for v, t in hits if t.ambiguous), None)
            reading.evidence = "distinctive" if distinctive else "ambiguous" if ambiguous else "none"
            reading.hit = distinctive or ambiguous
        budget = self.manifest.max_views
        for k in range(min(budget, max(len(r.views) for r in readings))):
            active = [r for r in readings if not r.decided and k < len(r.views)]
            if not active:
                break
            # long texts are covered by their sentence views
            for reading, probs in zip(active, self._probs_many([r.views[k].text[:MAX_VIEW_CHARS] for r in active])):
                reading.passes += 1
                score = float(1.0 - probs[0])
                if score > reading.best:
                    reading.best, reading.best_probs, reading.best_view = score, probs, reading.views[k].kind
                reading.decided = flag_rule(reading.evidence, reading.best, self.threshold, self.ambiguous_threshold)
        return [self._decision(r) for r in readings]

    def _decision(self, r: _Reading) -> ClassifierDecision:
        assert r.best_probs is not None
        probs = r.best_probs
        target = self.manifest.labels[1 + int(np.argmax(probs[1:]))] if len(probs) > 1 else None
        if r.hit is not None:
            target = r.hit[1].target
        flagged = flag_rule(r.evidence, r.best, self.threshold, self.ambiguous_threshold)
        view_kind = r.hit[0].kind if r.evidence == "distinctive" and r.hit is not None else r.best_view
        return ClassifierDecision(flagged=flagged, score=r.best, target=target,
                                  threshold=applicable_threshold(r.evidence, self.threshold, self.ambiguous_threshold),
                                  key_term=r.hit[1].text if r.hit else None, evidence=r.evidence, view=view_kind,
                                  views=r.passes)

    def classify_batch(self, prompts: Sequence[object]) -> list[ClassifierDecision]:
        """Classify several prompts, scored in batches; each decision is the one the prompt gets alone.
        Validates all of them before scoring any.

        Raises:
            ClassifierInputError: a prompt is not text, not UTF-8, or longer than ``max_prompt_chars``.
            ClassifierRuntimeError: ONNX Runtime failed (never read a failure as "not in scope").
        """
        texts = [_as_text(p, self.manifest.max_prompt_chars) for p in prompts]
        readable = [bool(normalize_for_classifier(t)) for t in texts]
        decided = iter(self._classify_texts([t for t, ok in zip(texts, readable) if ok]) if any(readable) else [])
        return [next(decided) if ok else
                ClassifierDecision(flagged=False, score=0.0, target=None, threshold=self.threshold, views=0)
                for ok in readable]

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
            coined = any(not t.ambiguous
                         for t in find_standalone_terms(joint_text, self._key_terms, self._exceptions, self.vocabulary))
            joint = float(1.0 - self._probs(joint_text[:MAX_VIEW_CHARS])[0])
            if coined or joint > self.threshold:
                for j in [*window, i]:
                    in_scope[j] = True
                chosen.append(own.model_copy(update={"score": joint, "flagged": True}))
        spans = tuple(dict.fromkeys(text for text, flag in zip(users, in_scope) if flag))
        top = max(chosen, default=max(decisions, key=lambda d: d.score), key=lambda d: d.score)
        return FlagDecision(flagged=bool(spans), spans=spans, score=top.score, target=top.target, threshold=top.threshold)
