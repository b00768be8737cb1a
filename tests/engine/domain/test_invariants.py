"""The written invariants: the module and docs/architecture.md carry the same list, word for word."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.domain.invariants import BY_CODE, INVARIANTS, invariant

DOC = Path(__file__).resolve().parents[3] / "docs" / "architecture.md"


def documented() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("Invariants (`engine/domain/invariants.py`"):]
    out = {}
    for line in section.splitlines()[2:]:
        if not line.startswith("- "):
            break
        code, statement = line[2:].split(" ", 1)
        out[code] = statement
    return out


def test_docs_list_every_invariant_word_for_word():
    assert documented() == {inv.code: inv.statement for inv in INVARIANTS}


def test_codes_are_unique_and_well_formed():
    codes = [inv.code for inv in INVARIANTS]
    assert len(set(codes)) == len(codes) == len(BY_CODE)
    assert all(re.fullmatch(r"[MPTF][1-9]", c) for c in codes)
    assert {inv.subject for inv in INVARIANTS} <= {"mask", "pair", "task", "verdict", "file", "image"}
    assert invariant("t5") is BY_CODE["T5"]
    with pytest.raises(KeyError, match="no invariant 'X9'"):
        invariant("X9")
