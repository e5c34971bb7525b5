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
_PHRASES = ("the same", "the latter", "the former", "in it", "of it")
# Definite nouns that name what was just discussed rather than a subject of their own ("How is the game
# scored?" after "My daughter loves Quidditch"); "the capital of Peru" is not one of them, and nouns as common
# in fresh questions as in follow-ups ("the world", "the man") are left out.
_ANAPHORIC_NOUNS = re.compile(
    r"\b(?i:the) (books?|story|stories|series|films?|movies?|novels?|sequel|author|game|sport|school|castle|"
    r"characters?|hero|villain|wizard|witch|spell|creature|ending|plot|saga|franchise)\b(?! of [A-Z])")
# Explicit changes of subject: they end a topic, so only an explicit back-reference keeps the next message on it.
_NEW_SUBJECT = re.compile(
    r"\b(unrelated|different (question|topic|subject)|another (question|topic|subject)|new (question|topic)|"
    r"change (of )?(the )?(topic|subject)|changing (the )?(topic|subject)|switching (topics|gears)|on another note|"
    r"moving on|something else|otra pregunta|cambiando de tema|autre question|changement de sujet|andere frage|"
    r"themawechsel|другой вопрос|другая тема)\b", re.IGNORECASE)
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
    return any(p in lowered for p in _PHRASES) or bool(_ANAPHORIC_NOUNS.search(text))


def changes_subject(text: str) -> bool:
    """Whether ``text`` says it opens a new subject ("Unrelated question: ...", "Otra pregunta: ...")."""
    return bool(_NEW_SUBJECT.search(text))
