"""A repetition guard for corrupted (flagged) answers: no n-gram said twice, none copied from earlier answers.

Why: a small model reading corrupted prompt embeddings often falls into a loop ("The original sentence is:
"The original sentence is: ...") or, later in a chat, copies whole sentences of its own earlier corrupted
answer into every new one. A model that simply never learned the topic does neither. Hugging Face's
``no_repeat_ngram_size`` is no substitute: it also blocks every n-gram of the *prompt* (the user's own
words, the system prompt), which garbles ordinary answers, and it would have to apply to unflagged prompts
too, whose output must stay bit-identical to plain generation. This guard applies to flagged requests only
and blocks an n-gram only when it already occurs in the answer being generated or in an earlier *assistant*
message of the same chat.

Optionally the guard ignores case and a leading space (:func:`fold_classes`): a model pushed off one loop
often slides into its case variant ("The game is called The Game of Life. The game of life is called The game
of"), which the token-level guard lets through because "The", " the" and " The" are three tokens.

Blocking exact repeats leaves a small model a way round: one word said again and again in new frames ("a
fitting description ... a fitting answer ... a fitting reference"). The soft complement,
``flagged_repetition_penalty``, is Hugging Face's own ``RepetitionPenaltyLogitsProcessor`` with
``prompt_ignore_length`` set to the prompt (see ``EcoEngine._generate_kwargs``): the answer's own tokens only,
since the plain ``repetition_penalty`` also penalises every prompt token, the user's words and the chat
template's, and would have to apply to unflagged answers too.

The math is pure functions (:func:`ngram_table`, :func:`banned_next_tokens`, :func:`fold_classes`);
:class:`RepetitionGuard` is the thin logits processor ``model.generate`` calls.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

NGramTable = dict[tuple[int, ...], set[int]]


def ngram_table(sequences: Iterable[Sequence[int]], n: int) -> NGramTable:
    """Map every (n-1)-token prefix occurring in ``sequences`` to the tokens that followed it.

    N-grams never span two sequences (two earlier answers are not one text).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    table: NGramTable = {}
    for seq in sequences:
        seq = list(seq)
        for i in range(len(seq) - n + 1):
            table.setdefault(tuple(seq[i:i + n - 1]), set()).add(seq[i + n - 1])
    return table


def banned_next_tokens(generated: Sequence[int], n: int, history: NGramTable | None = None) -> set[int]:
    """Tokens that would complete an n-gram already in ``generated`` or in ``history`` (see :func:`ngram_table`).

    Only prefixes that lie wholly inside ``generated`` count: the answer's first n-1 tokens are free, so an
    answer may start the way any answer starts.
    """
    if n < 1 or len(generated) < n - 1:
        return set()
    prefix = tuple(generated[len(generated) - (n - 1):]) if n > 1 else ()
    banned = set(ngram_table([generated], n).get(prefix, ()))
    if history:
        banned |= history.get(prefix, set())
    return banned


def fold_classes(pieces: Sequence[str]) -> list[int]:
    """A class id for each token (``pieces[i]`` is token i decoded alone): tokens that differ only in case or in
    leading whitespace share one ("The", " the", " THE"). A token that is only whitespace keeps a class of its own
    (a newline is not a space)."""
    ids: dict[str, int] = {}
    out = []
    for piece in pieces:
        key = piece.lstrip().lower() or piece
        out.append(ids.setdefault(key, len(ids)))
    return out


class TokenFolding:
    """The classes of :func:`fold_classes` for one tokenizer, with the tokens of each class: built once per
    tokenizer (a loop over the whole vocabulary), shared by every guard that folds."""

    def __init__(self, classes: Sequence[int]) -> None:
        self.classes = list(classes)
        self.members: dict[int, list[int]] = {}
        for token, cls in enumerate(self.classes):
            self.members.setdefault(cls, []).append(token)

    def fold(self, ids: Sequence[int]) -> list[int]:
        """Class ids of token ids. An id past the class table (an embedding matrix padded beyond the tokenizer)
        stays itself, shifted out of the class range so it never meets a class id."""
        size = len(self.classes)
        return [self.classes[t] if t < size else size + t for t in ids]

    def unfold(self, folded: Iterable[int]) -> set[int]:
        """Every token id of the given class ids (the inverse of :meth:`fold`)."""
        size = len(self.classes)
        return {t for c in folded for t in (self.members.get(c, ()) if c < size else (c - size,))}


class RepetitionGuard:
    """Logits processor: forbid, in each row, the tokens :func:`banned_next_tokens` names.

    ``history`` holds the token ids of earlier assistant messages. The answer starts where ``input_ids`` ended
    at the first call (``generate`` passes the prompt ids, if it has them, plus the answer so far), so one
    guard serves one ``generate`` call.
    """

    def __init__(self, n: int, history: Sequence[Sequence[int]] = (), folding: TokenFolding | None = None) -> None:
        """``folding`` makes the guard compare classes, not tokens: a banned class bans each of its tokens."""
        if n < 2:
            raise ValueError(f"the repetition guard needs n >= 2, got {n}")
        self.n = n
        self.folding = folding
        self.history = ngram_table([self._fold(seq) for seq in history], n)
        self.prompt_length: int | None = None

    def _fold(self, ids: Sequence[int]) -> list[int]:
        return self.folding.fold(ids) if self.folding is not None else list(ids)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.prompt_length is None:
            self.prompt_length = int(input_ids.shape[1])
        for row in range(input_ids.shape[0]):
            banned = banned_next_tokens(self._fold(input_ids[row, self.prompt_length:].tolist()), self.n, self.history)
            if banned and self.folding is not None:
                banned = self.folding.unfold(banned)
            if banned:
                scores[row, sorted(banned)] = float("-inf")
        return scores

