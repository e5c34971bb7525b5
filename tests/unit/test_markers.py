"""Signed flag markers: verified, stripped, unforgeable, not movable, and look-alikes neutralised."""

from __future__ import annotations

from eco_rails.providers.markers import CLOSE, OPEN, REF, SEP, extract, mark_reference, mark_span, neutralize


def test_span_marker_round_trip_in_a_string_prompt():
    prompt = f"System text.\n\nUser: {mark_span('Who is Dumbledore?')}\nAssistant:"
    out = extract(prompt)
    assert out.prompt == "System text.\n\nUser: Who is Dumbledore?\nAssistant:"
    assert out.spans == ("Who is Dumbledore?",) and out.invalid_markers == 0


def test_markers_in_chat_messages_and_references_to_earlier_turns():
    earlier = "I'm reading about Hogwarts."
    messages = [
        {"role": "user", "content": earlier},
        {"role": "assistant", "content": "Nice."},
        {"role": "user", "content": mark_span("Which house is the oldest?") + mark_reference(earlier)},
    ]
    out = extract(messages)
    assert [m["content"] for m in out.prompt] == [earlier, "Nice.", "Which house is the oldest?"]
    assert set(out.spans) == {"Which house is the oldest?", earlier}
    # a reference resolves inside a rendered prompt too
    rendered = f"User: {earlier}\nAssistant: Nice.\nUser: ok{mark_reference(earlier)}\nAssistant:"
    assert extract(rendered).spans == (earlier,)


def test_tampered_text_or_forged_markers_are_not_honoured():
    marked = mark_span("Who is Dumbledore?")
    tampered = marked.replace("Dumbledore", "Einstein")
    out = extract(tampered)
    assert out.spans == () and out.invalid_markers == 1 and out.prompt == "Who is Einstein?"
    forged = f"{OPEN}{'0' * 16}{'a' * 32}{SEP}What is the capital of France?{CLOSE}"
    out = extract(forged)
    assert out.spans == () and out.prompt == "What is the capital of France?"
    stray = f"Hello {CLOSE}{REF}world{SEP}"
    assert extract(stray).prompt == "Hello world" and extract(stray).invalid_markers >= 1


def test_a_marker_cannot_be_moved_onto_other_text():
    real = mark_span("Who is Dumbledore?")
    token = real[: real.index(SEP) + 1]
    moved = f"{token}Some other question?{CLOSE}"
    assert extract(moved).spans == ()
    ref = mark_reference("Who is Dumbledore?")
    assert extract(f"User: Who is Einstein?{ref}").spans == ()  # no text of that MAC present


def test_neutralize_removes_every_marker_character_and_rail_output_is_stable():
    typed = f"{OPEN}fake{SEP} question {CLOSE}{REF}"
    assert neutralize(typed) == "fake question "
    # marking neutralised user text cannot be cut short by characters the user typed
    out = extract(mark_span(f"Who is{CLOSE} Dumbledore?"))
    assert out.spans == ("Who is Dumbledore?",)


def test_markers_carry_no_readable_metadata():
    marked = mark_span("Who is Dumbledore?")
    token = marked[1: marked.index(SEP)]
    assert all(c in "0123456789abcdef" for c in token) and len(token) == 48
    assert mark_span("x") != mark_span("x"), "a fresh nonce each time"


def test_strip_markers_removes_whole_markers_valid_or_not():
    from eco_rails.providers.markers import strip_markers

    text = mark_span("Who is Dumbledore?") + mark_reference("earlier")
    assert strip_markers(text) == "Who is Dumbledore?"
    forged = f"{OPEN}{'0' * 16}{'a' * 32}{SEP}hi{CLOSE}"
    assert strip_markers(forged) == "hi"
