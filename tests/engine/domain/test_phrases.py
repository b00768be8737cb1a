import pytest

from engine.domain.phrases import (
    PhraseListError,
    clean_phrase,
    clean_phrases,
    normalise_phrase,
    parse_phrase_list,
    singularise,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The dogs", "dog"),
        ("a pair of shoes", "shoe"),
        ("2 cups of coffee", "cup of coffee"),
        ("my grandmother's glasses", "glasses"),
        ("the dog's red collar", "red collar"),
        ("  A  Red   BALL. ", "red ball"),
        ("people", "person"),
        ("three little wolves", "little wolf"),
        ("buses", "bus"),
        ("houses", "house"),
        ("boxes", "box"),
        ("cherries", "cherry"),
        ("a bunch of bananas", "banana"),
        ("scissors", "scissors"),
        ("the grass", "grass"),
        ("sheep", "sheep"),
        ("a tennis racket", "tennis racket"),
    ],
)
def test_clean_phrase_keeps_and_normalises(raw, expected):
    assert clean_phrase(raw).phrase == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("it", "ungroundable"),
        ("They", "ungroundable"),
        ("the background", "ungroundable"),
        ("something", "ungroundable"),
        ("blue", "only a colour"),
        ("dark grey", "only a colour"),
        ("the", "empty"),
        ("42", "empty"),
        ("a very long phrase that goes on and on about nothing in particular", "too long"),
    ],
)
def test_clean_phrase_drops_with_a_reason(raw, reason):
    cleaned = clean_phrase(raw)
    assert cleaned.phrase is None and reason in cleaned.reason


def test_clean_phrases_merges_duplicates_and_reorders():
    kept, dropped = clean_phrases(["dogs", "the dog", "wooden table", "table wooden", "it", "small dog"])
    assert kept == ["dog", "wooden table", "small dog"]
    assert [(d.source, d.reason) for d in dropped] == [
        ("table wooden", "near-duplicate of 'wooden table'"),
        ("it", "ungroundable: 'it' names no visible thing"),
    ]


def test_normalise_is_the_concept_key():
    assert normalise_phrase("Ｒed\u00a0Ball!") == "red ball"
    assert singularise("glass") == "glass" and singularise("mice") == "mouse"


@pytest.mark.parametrize(
    ("answer", "phrases"),
    [
        ('["a dog", "red ball"]', ["a dog", "red ball"]),
        ('Sure! Here they are:\n```json\n["cat", "mat",]\n```', ["cat", "mat"]),
        ("['cat', 'hat']", ["cat", "hat"]),
        ("[cat, hat]", ["cat", "hat"]),
        ('[{"phrase": "cat"}, {"text": "hat"}]', ["cat", "hat"]),
        ("- a cat\n- a hat\n", ["a cat", "a hat"]),
        ("1. a cat\n2) a hat", ["a cat", "a hat"]),
        ("[]", []),
    ],
)
def test_llm_answers_are_repaired(answer, phrases):
    assert parse_phrase_list(answer) == phrases


@pytest.mark.parametrize("answer", ["", "I cannot see any image.", "\ufffd\ufffd\x02garbage", '{"a": 1}'])
def test_malformed_llm_answers_are_errors(answer):
    with pytest.raises(PhraseListError, match="no list of phrases"):
        parse_phrase_list(answer)
