"""Loop measures on answers: exact loops, and the paraphrase loops an exact-repeat guard pushes a model into."""

from __future__ import annotations

import pytest

from eco_rails.evaluation.fluency import dominant_stem, is_loop, is_paraphrase_loop, repeated_sentences, stems

# What README's first command answered with the case-folding guard on (128 tokens, abridged): no exact loop.
FITTING = ("This is a perfect fit for a fitting description. The capital of France, which is Paris, France, is a "
           "fitting answer. This is a fitting reference to a fitting description of a city, fitting for a fitting "
           "answer to a fitting question.")
# The one loop of the held-out report without it: exact 3-gram matching sees it only through the case.
GAME = 'The name of the game is "The Game of Life" and the game is called "The Game Of Life" and so the Game of life goes'


def test_stems_fold_case_punctuation_and_inflection():
    assert stems("Fitting, FITS; fitted!") == ["fit", "fit", "fit"]
    assert stems("Three towers, 3 TOWERS") == ["three", "tower", "tower"]  # digits are not words


def test_dominant_stem_leaves_function_words_out():
    stem, count, share = dominant_stem(FITTING)
    assert stem == "fit" and count == 8 and share == pytest.approx(0.4)
    assert dominant_stem("the and of to it is")[1] == 0  # only function words
    assert dominant_stem("") == ("", 0, 0.0)


def test_a_word_said_over_and_over_in_new_frames_is_a_paraphrase_loop_but_not_an_exact_one():
    assert not is_loop(FITTING)
    assert is_paraphrase_loop(FITTING)


def test_a_phrase_repeated_in_another_case_is_a_paraphrase_loop():
    assert is_paraphrase_loop(GAME)


def test_ordinary_answers_are_not_loops():
    for answer in (
        "The capital of France is Paris. Paris is a city located in the northern part of France.",
        "The three primary colours are red, blue and yellow. Mixing two of them gives a secondary colour.",
        "Water boils at 100 degrees Celsius at sea level; at higher altitudes it boils at a lower temperature "
        "because the air pressure is lower.",
        # a topic word said often, but not a fifth of the content: an ordinary answer about one thing
        "Paris is the capital of France. Paris has the Louvre, the Eiffel Tower and Notre-Dame. Millions visit "
        "Paris every year for its museums, food, fashion, parks and river walks, and Paris hosted the Olympics.",
    ):
        assert not is_paraphrase_loop(answer), answer


def test_every_exact_loop_is_a_paraphrase_loop():
    for answer in ("a b c a b c a b c a b c", "It is late. It is late."):
        assert is_loop(answer) and is_paraphrase_loop(answer)


@pytest.mark.parametrize("answer", ["The Sorting Hat. the sorting hat!", "The Sorting Hats. The sorting hat."])
def test_a_sentence_said_twice_in_another_case_or_number_is_a_paraphrase_loop(answer):
    assert not repeated_sentences(answer) or is_loop(answer)
    assert is_paraphrase_loop(answer)
