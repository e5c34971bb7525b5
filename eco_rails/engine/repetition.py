"""A repetition guard for corrupted (flagged) answers: no n-gram said twice, none copied from earlier answers.

Why: a small model reading corrupted prompt embeddings often falls into a loop ("The original sentence is:
"The original sentence is: ...") or, later in a chat, copies whole sentences of its own earlier corrupted
answer into every new one. A model that simply never learned the topic does neither. Hugging Face's
``no_repeat_ngram_size`` is no substitute: it also blocks every n-gram of the *prompt* (the user's own
words, the system prompt), which garbles ordinary answers, and it would have to apply to unflagged prompts
too, whose output must stay bit-identical to plain generation. This guard applies to flagged requests only
and blocks an n-gram only when it already occurs in the answer being generated or in an earlier *assistant*
message of the same chat.

The math is two pure functions (:func:`ngram_table`, :func:`banned_next_tokens`); :class:`RepetitionGuard`
is the thin logits processor ``model.generate`` calls.
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


class RepetitionGuard:
    """Logits processor: forbid, in each row, the tokens :func:`banned_next_tokens` names.

    ``history`` holds the token ids of earlier assistant messages. The answer starts where ``input_ids`` ended
    at the first call (``generate`` passes the prompt ids, if it has them, plus the answer so far), so one
    guard serves one ``generate`` call.
    """

    def __init__(self, n: int, history: Sequence[Sequence[int]] = ()) -> None:
        if n < 2:
            raise ValueError(f"the repetition guard needs n >= 2, got {n}")
        self.n = n
        self.history = ngram_table(history, n)
        self.prompt_length: int | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.prompt_length is None:
            self.prompt_length = int(input_ids.shape[1])
        for row in range(input_ids.shape[0]):
            banned = banned_next_tokens(input_ids[row, self.prompt_length:].tolist(), self.n, self.history)
            if banned:
                scores[row, sorted(banned)] = float("-inf")
        return scores
