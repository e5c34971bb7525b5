"""Does a message continue the conversation before it? Pure, multilingual, cheap.

A follow-up that only points back ("What house is she in?", "And his wand?", "¿Y quién lo mató?") carries
the earlier turn's topic: if that turn is in scope, so is the follow-up. A message with a subject of its
own ("Thanks. What's the capital of Peru?") is not a follow-up, whatever came before.
"""

from __future__ import annotations

import re

# Pronouns and determiners that refer back, in the languages the classifier's templates cover.
_ANAPHORA = {
    "en": "he she it they him her his hers its their theirs them this that these those there one ones himself herself "
          "themselves",
    "es": "él ella ellos ellas lo le les su sus suyo suya este esta ese esa eso aquel aquella allí",
    "fr": "il elle ils elles lui leur leurs son sa ses cette ces celui celle là-bas",
    "de": "er ihn ihm ihr ihre ihren sein seine seinen dieser diese dieses jener dort",
    "it": "lui lei loro suo sua suoi sue questo questa quello quella lì",
    "pt": "ele ela eles elas lhe seu sua seus suas este esta esse essa isso aquele aquela lá",
    "nl": "hij zij ze hem haar zijn hun dit dat deze die daar",
    "ru": "он она оно они его её ее их ему ей им этот эта это эти тот та там",
    "pl": "on ona ono oni one jego jej ich mu ten ta to tam",
}
_WORDS = {w for words in _ANAPHORA.values() for w in words.split()}
_PHRASES = ("the same", "the latter", "the former", "the books", "the book", "the story", "the series", "the film",
            "the movie", "in it", "of it")
# Elliptical openers: "And ...?", "What about ...?", "Y ...?"
_ELLIPSIS = re.compile(r"^\s*(and|also|what about|how about|then|so|but|y|et|und|e|en|a|и|а|ну|ещё|also)\b", re.IGNORECASE)
_CJK_BACK = re.compile(r"(他|她|它|他们|她们|这|那|彼|彼女|それ|その|あの|この|그|그녀|그들|이|저)")


def refers_back(text: str) -> bool:
    """Whether ``text`` points back at something said before (a pronoun, a demonstrative, an ellipsis)."""
    lowered = text.lower()
    if _ELLIPSIS.match(lowered) or _CJK_BACK.search(text):
        return True
    tokens = set(re.findall(r"[\w'-]+", lowered))
    if tokens & _WORDS:
        return True
    return any(p in lowered for p in _PHRASES)
