"""Noun-phrase normalisation (the concept key)."""

from __future__ import annotations

import re
import unicodedata

_SPACE = re.compile(r"\s+")


def normalise_phrase(text: str) -> str:
    """Lower-case, NFKC, single spaces, no surrounding punctuation: the unique key of a concept."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _SPACE.sub(" ", text).strip(" \t\n.,;:!?\"'()[]{}")
    return text
