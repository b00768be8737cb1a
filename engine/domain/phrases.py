"""Noun phrases: normalisation (the concept key), cleaning, singularisation, near-duplicate merging,
and repair of an LLM's answer into a list of phrases. Pure functions."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass

_SPACE = re.compile(r"\s+")
_EDGE_PUNCT = " \t\n.,;:!?\"'()[]{}*-_`"

DETERMINERS = frozenset({
    "a", "an", "the", "this", "that", "these", "those", "some", "any", "each", "every", "another",
    "my", "your", "his", "her", "its", "our", "their", "one", "two", "three", "four", "five", "six",
    "seven", "eight", "nine", "ten", "several", "many", "few", "both", "all", "no", "much", "more",
    "most", "other", "such", "what", "which", "whose", "lots", "lot", "of", "couple", "pair",
    "group", "bunch", "number",
})
# Words that never name something one can draw a mask around.
UNGROUNDABLE = frozenset({
    "it", "its", "they", "them", "this", "that", "these", "those", "he", "she", "him", "her", "we",
    "us", "you", "i", "me", "one", "ones", "thing", "things", "something", "anything", "nothing",
    "everything", "stuff", "object", "objects", "item", "items", "image", "picture", "photo",
    "photograph", "scene", "view", "background", "foreground", "front", "side", "top", "bottom",
    "middle", "center", "centre", "left", "right", "area", "part", "piece", "kind", "type", "lot",
    "way", "time", "day", "night", "color", "colour", "shape", "what", "which", "who", "there",
    "here", "someone", "somebody", "anyone", "everyone",
})
COLOURS = frozenset({
    "red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black", "white",
    "grey", "gray", "silver", "gold", "golden", "beige", "tan", "cyan", "magenta", "turquoise",
    "navy", "maroon", "dark", "light", "bright", "colorful", "colourful",
})
IRREGULAR_PLURALS = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse",
    "geese": "goose", "teeth": "tooth", "feet": "foot", "oxen": "ox", "lice": "louse",
    "knives": "knife", "wives": "wife", "lives": "life", "leaves": "leaf", "loaves": "loaf",
    "wolves": "wolf", "calves": "calf", "halves": "half", "shelves": "shelf", "thieves": "thief",
    "scarves": "scarf", "hooves": "hoof", "elves": "elf", "selves": "self", "cacti": "cactus",
    "fungi": "fungus", "dice": "die", "criteria": "criterion", "phenomena": "phenomenon",
    "buses": "bus", "gases": "gas", "lenses": "lens", "atlases": "atlas", "canvases": "canvas",
    "irises": "iris", "octopuses": "octopus", "cactuses": "cactus", "viruses": "virus",
}
# Words that end like plurals but are not, or have no singular.
INVARIANT = frozenset({
    "glasses", "sunglasses", "scissors", "pants", "jeans", "shorts", "trousers", "tights",
    "pajamas", "binoculars", "tongs", "pliers", "species", "series", "news", "bus", "gas", "lens",
    "dress", "grass", "glass", "chess", "moss", "boss", "cross", "class", "mattress", "compass",
    "cactus", "octopus", "virus", "bonus", "circus", "hippopotamus", "asparagus", "hummus",
    "couscous", "analysis", "basis", "axis", "tennis", "mathematics", "physics", "clothes",
    "headphones", "earphones", "goggles", "stairs", "sheep", "deer", "fish", "aircraft", "bison",
    "moose", "salmon", "trout", "shrimp", "swiss", "jess", "canvas", "atlas", "iris", "chassis",
})
POSSESSIVE = re.compile(r"^.*\w(?:'s|’s|s'|s’)\s+")  # "the man's hat" → "hat"
_WORD = re.compile(r"[a-z0-9][a-z0-9'\-&/]*")
MAX_PHRASE_WORDS = 8
MAX_PHRASE_CHARS = 80


def normalise_phrase(text: str) -> str:
    """Lower-case, NFKC, single spaces, no surrounding punctuation: the unique key of a concept."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _SPACE.sub(" ", text).strip(_EDGE_PUNCT)
    return text


def singularise(word: str) -> str:
    """English noun → singular, by irregular table and suffix rules (no dictionary)."""
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if word in INVARIANT or len(word) <= 3 or not word.endswith("s"):
        return word
    if word.endswith(("ss", "us", "is", "'s")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zzes")):
        return word[:-2]
    if word.endswith("oes") and word[:-2] in {"potato", "tomato", "hero", "echo", "mango", "volcano"}:
        return word[:-2]
    return word[:-1]


@dataclass(frozen=True)
class CleanedPhrase:
    source: str
    phrase: str | None  # None: dropped
    reason: str | None = None  # why it was dropped


def clean_phrase(text: str) -> CleanedPhrase:
    """Normalise one noun phrase: strip determiners, quantities and possessives, singularise the
    head noun, and drop what cannot be grounded (pronouns, bare colours, 'thing', 'background'…)."""
    norm = normalise_phrase(text)
    norm = POSSESSIVE.sub("", norm)
    words = _WORD.findall(norm)
    while words and (words[0] in DETERMINERS or words[0].isdigit()):
        words = words[1:]
    if not words:
        return CleanedPhrase(text, None, "empty after removing determiners")
    head = words.index("of") - 1 if "of" in words[1:] else len(words) - 1  # "cups of tea"
    words[head] = singularise(words[head])
    phrase = " ".join(words)
    if len(words) > MAX_PHRASE_WORDS or len(phrase) > MAX_PHRASE_CHARS:
        return CleanedPhrase(text, None, f"too long to be a noun phrase ({len(words)} words)")
    if all(w in UNGROUNDABLE for w in words):
        return CleanedPhrase(text, None, f"ungroundable: {phrase!r} names no visible thing")
    if all(w in COLOURS for w in words):
        return CleanedPhrase(text, None, f"ungroundable: {phrase!r} is only a colour")
    if not any(c.isalpha() for c in phrase):
        return CleanedPhrase(text, None, "no letters")
    return CleanedPhrase(text, phrase)


def clean_phrases(texts: list[str]) -> tuple[list[str], list[CleanedPhrase]]:
    """Clean and deduplicate: returns (kept phrases in first-seen order, dropped with reasons).
    Exact duplicates after cleaning ("dogs", "the dog") merge silently; the same words in
    another order ("wooden table", "table wooden") merge into the first as near-duplicates.
    A phrase and a more specific one ("dog", "small dog") are different concepts and both stay."""
    kept: list[str] = []
    seen: dict[tuple[str, ...], str] = {}
    dropped: list[CleanedPhrase] = []
    for text in texts:
        cleaned = clean_phrase(text)
        if cleaned.phrase is None:
            dropped.append(cleaned)
            continue
        key = tuple(sorted(cleaned.phrase.replace("-", " ").split()))
        if key in seen:
            if seen[key] != cleaned.phrase:
                dropped.append(CleanedPhrase(text, None, f"near-duplicate of {seen[key]!r}"))
            continue
        seen[key] = cleaned.phrase
        kept.append(cleaned.phrase)
    return kept, dropped


class PhraseListError(ValueError):
    """An LLM answer that holds no list of phrases, even after repair."""


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.+?)\s*$", re.MULTILINE)


def parse_phrase_list(answer: str) -> list[str]:
    """A JSON list of strings from a model's answer, repaired where possible: code fences, text
    around the list, single quotes, trailing commas, a bulleted or numbered list. Raises
    PhraseListError when nothing usable is there."""
    text = _unfenced(answer.strip())
    listed = _bracketed_list(text)
    if listed is not None:
        return listed
    bullets = _BULLET.findall(text)
    if bullets:
        return [b.strip().strip("\"'") for b in bullets if b.strip()]
    raise PhraseListError(f"no list of phrases in the answer: {answer[:120]!r}")


def _unfenced(text: str) -> str:
    """The inside of the first code fence, else the text."""
    fenced = _FENCE.search(text)
    return fenced.group(1).strip() if fenced else text


def _bracketed_list(text: str) -> list[str] | None:
    """The phrases of the text from its first ``[`` to its last ``]``: as JSON, as JSON once single
    quotes and trailing commas are repaired, else as comma-separated items (None: none of these)."""
    start, end = text.find("["), text.rfind("]")
    if start == -1 or end <= start:
        return None
    body = text[start:end + 1]
    for candidate in (body, re.sub(r",\s*\]", "]", body.replace("'", '"'))):
        phrases = _json_phrases(candidate)
        if phrases is not None:
            return phrases
    return _comma_items(body[1:-1])


def _json_phrases(candidate: str) -> list[str] | None:
    """A JSON list of strings (the non-blank ones, stripped) or of objects each with a ``phrase`` or
    ``text`` (None: not JSON, or not such a list)."""
    try:
        value = json.loads(candidate)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    if all(isinstance(v, dict) for v in value):
        out = [str(v.get("phrase") or v.get("text") or "").strip() for v in value]
        if all(out):
            return out
    return None


def _comma_items(inner: str) -> list[str] | None:
    """Comma-separated items, unquoted (None: an item is empty or longer than a phrase may be)."""
    items = [i.strip().strip("\"'").strip() for i in inner.split(",")]
    if items and all(items) and all(len(i) <= MAX_PHRASE_CHARS for i in items):
        return items
    return None
