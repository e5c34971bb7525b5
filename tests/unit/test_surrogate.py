"""The surrogate reference of the strength search: questions about invented names, built without a model."""

from __future__ import annotations

import random

import pytest

from eco_rails.strength.surrogate import (
    answer_probability,
    invented_name,
    mean_gap,
    name_parts,
    substitute_terms,
    term_spans,
)

TERMS = ["Harry Potter", "Harry", "Hogwarts", "Ron Weasley", "Platform 9 3/4"]


def test_every_term_is_replaced_in_question_and_choices_with_one_name_per_term():
    question, choices = substitute_terms("Which house at Hogwarts is Harry Potter's? hogwarts!", TERMS, random.Random(0),
                                         ["Ron Weasley", "Hogwarts", "Harry"])
    assert "Harry" not in question and "Hogwarts" not in question and "hogwarts" not in question
    school = choices[1]
    assert question.count(school) == 2, "the same term gets the same invented name throughout the row"
    assert question.endswith("'s? " + school + "!"), "punctuation and possessives survive"
    assert len(set(choices)) == 3 and not {"Ron Weasley", "Harry"} & set(choices)


def test_choices_are_kept_unless_every_one_names_the_policy():
    question, choices = substitute_terms("Who wrote the Harry Potter books?", TERMS, random.Random(0), ["J.K. Rowling", "C.S. Lewis"])
    assert "Harry" not in question and choices == ["J.K. Rowling", "C.S. Lewis"]
    _, mixed = substitute_terms("What school does Harry attend?", TERMS, random.Random(0), ["Hogwarts", "Unseen University"])
    assert mixed == ["Hogwarts", "Unseen University"], "an invented name among real ones would stand out"


def test_the_longest_term_wins_and_terms_inside_other_words_are_left_alone():
    question, _ = substitute_terms("Is Harry Potter related to Harrys or Harrison Ford?", TERMS, random.Random(1))
    assert "Potter" not in question and "Harrys" in question and "Harrison Ford" in question


def test_terms_ending_in_symbols_are_matched():
    question, _ = substitute_terms("Where is Platform 9 3/4 exactly?", TERMS, random.Random(2))
    assert "9 3/4" not in question


def test_a_first_name_alone_in_mid_sentence_still_names_the_entity_and_is_replaced():
    terms = ["Harry Potter", "Sirius Black", "Hogwarts"]
    question, _ = substitute_terms("Who teaches Potions to Harry for his first five years?", terms, random.Random(0))
    assert "Harry" not in question and question.startswith("Who teaches Potions to ")
    question, _ = substitute_terms("Where do Harry's aunt and uncle live near Hogwarts?", terms, random.Random(0))
    assert "Harry" not in question and "'s aunt" in question


def test_a_name_part_at_a_sentence_start_or_in_lower_case_is_an_ordinary_word():
    terms = ["Sirius Black", "Hogwarts"]
    question, _ = substitute_terms("Black cats at Hogwarts: is a black cat unlucky?", terms, random.Random(0))
    assert question.startswith("Black cats at ") and "a black cat" in question and "Hogwarts" not in question
    assert substitute_terms("Black or white?", terms, random.Random(0)) is None


def test_name_parts_come_from_short_capitalised_names_not_from_titles():
    parts = name_parts(["Harry Potter", "Order of the Phoenix", "Warner Bros. Studio Tour London – The Making of Harry Potter",
                        "Hogwarts", "house-elf magic", "Ron Weasley"])
    assert set(parts) == {"Harry", "Potter", "Ron", "Weasley"}


def test_term_spans_are_exactly_the_pieces_the_surrogate_replaces():
    terms = ["Harry Potter", "Sirius Black", "Hogwarts"]
    question = "Black cats at Hogwarts: does Harry Potter's godfather Sirius Black like Harry? hogwarts!"
    spans = term_spans(question, terms)
    assert spans == ["Hogwarts", "Harry Potter", "Sirius Black", "Harry", "hogwarts"]
    rebuilt, _ = substitute_terms(question, terms, random.Random(0))
    assert not any(s in rebuilt for s in spans[1:]) and rebuilt.startswith("Black cats at ")
    assert term_spans("Is a black cat unlucky?", terms) == [] and term_spans("Anything", []) == []


def test_a_name_right_after_a_term_ending_in_a_full_stop_is_in_mid_sentence_for_both_functions():
    terms = ["S.P.E.W.", "Harry Potter"]
    question = "Did S.P.E.W. Harry join? S.P.E.W.Harry is one word."
    assert term_spans(question, terms) == ["S.P.E.W.", "Harry", "S.P.E.W."], "the term's full stop ends no sentence"
    rebuilt, _ = substitute_terms(question, terms, random.Random(0))
    assert rebuilt.startswith("Did ") and "Harry join" not in rebuilt and "Harry is one word" in rebuilt


def test_a_question_that_names_nothing_has_no_surrogate():
    assert substitute_terms("What is the capital of France?", TERMS, random.Random(0)) is None
    assert substitute_terms("Who is Harry?", [], random.Random(0)) is None


def test_invented_names_are_seeded_and_vary_between_draws():
    assert invented_name(random.Random(7)) == invented_name(random.Random(7))
    draws = {invented_name(random.Random(seed)) for seed in range(20)}
    assert len(draws) == 20 and all(len(name.split()) == 2 and name.istitle() for name in draws)


def test_answer_probability_is_a_softmax_over_choices():
    assert answer_probability([0.0, 0.0, 0.0, 0.0], 2) == pytest.approx(0.25)
    assert answer_probability([-1.0, -2.0], 0) == pytest.approx(1 / (1 + pytest.importorskip("math").exp(-1)))
    with pytest.raises(ValueError, match="outside"):
        answer_probability([0.0, 0.0], 2)


def test_the_gap_is_positive_while_the_model_is_more_confident_than_the_reference():
    assert mean_gap([0.6, 0.8], [0.3, 0.3]) == pytest.approx(0.4)
    assert mean_gap([0.2], [0.3, 0.3]) < 0
    with pytest.raises(ValueError):
        mean_gap([], [0.3])
