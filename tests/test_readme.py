"""The README tells the truth about settings and keys.

- The settings tables of README.md and docs/settings.md are what ``scripts/settings_table.py`` generates
  from ``engine.settings.Settings`` (a new setting or a changed default without its row fails, with the
  diff and the command that fixes it), and every setting has a description.
- Every key the queue page binds (its own keys in web/static/queue/main.js, each task kind's and the video
  player's key maps, the label keys the API sends from ``engine.domain.vocabulary.LABEL_KEYS``) is named
  in the README's key table. The keys are read from the page's sources, not listed here.
- The facts issue 20 found wrong stay right: the password length, where exported file names point.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from engine.domain.passwords import MAX_LENGTH, MIN_LENGTH
from engine.domain.vocabulary import LABEL_KEYS
from engine.settings import BatchSizes, Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
QUEUE_JS = ROOT / "web" / "static" / "queue"

#: how the README writes a key the page names by its KeyboardEvent.key
_KEY_NAMES = {" ": "Space", "Escape": "Esc", "ArrowLeft": "←", "ArrowRight": "→"}


@pytest.fixture(scope="module")
def table_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dataengine_settings_table", ROOT / "scripts" / "settings_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def _readme() -> str:
    return README.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ settings
def test_settings_tables_match_the_code(table_script: ModuleType) -> None:
    diff = table_script.differences()
    assert not diff, ("README.md or docs/settings.md differs from engine/settings.py; run "
                      "`.venv/bin/python scripts/settings_table.py --write` and commit both:\n" + diff)


def test_every_setting_has_a_row_and_a_description(table_script: ModuleType) -> None:
    rows = table_script.rows()
    docs = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert len({r.env for r in rows}) == len(rows)
    for row in rows:
        assert f"| `{row.env}` |" in docs
    undescribed = [r.env for r in rows if not r.description or r.description.startswith("one of ")]
    assert not undescribed, f"settings without Field(description=...): {undescribed}"


def test_defaults_are_the_code_s_not_the_environment_s(table_script: ModuleType,
                                                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATAENGINE_BATCH_SIZES__VERIFY", "99")
    monkeypatch.setenv("DATAENGINE_DATA_DIR", str(tmp_path))
    by_env = {r.env: r for r in table_script.rows()}
    assert by_env["DATAENGINE_BATCH_SIZES__VERIFY"].default == f"`{BatchSizes().verify}`"
    assert by_env["DATAENGINE_DATA_DIR"].default == "`dataengine-data`"
    # derived from data_dir by the validator: shown relative to it, whatever machine renders it
    assert by_env["DATAENGINE_MEDIA_ROOT"].default == "`<data_dir>/media`"
    assert by_env["DATAENGINE_DATABASE_URL"].default == "`sqlite:///<data_dir>/dataengine.db`"
    assert by_env["DATAENGINE_MODELS__CACHE_DIR"].default == "`<data_dir>/models`"


def test_every_settings_leaf_is_walked(table_script: ModuleType) -> None:
    """The walk reaches every leaf the settings object dumps (nested models included)."""

    def leaves(data: dict[str, object], path: tuple[str, ...] = ()) -> set[str]:
        out: set[str] = set()
        for key, value in data.items():
            out |= leaves(value, (*path, key)) if isinstance(value, dict) else {".".join((*path, key))}
        return out

    dumped = Settings.model_fields  # top-level names: the dict-valued ones are nested models
    assert {r.path.split(".")[0] for r in table_script.rows()} == set(dumped)
    walked = {r.path for r in table_script.rows()}
    assert leaves(table_script.code_defaults().model_dump()) <= walked


def test_rendering(table_script: ModuleType) -> None:
    render = table_script.render
    assert render(None) == "unset"
    assert render(True) == "`true`"
    assert render(60.0, "total_timeout_s") == "`60`"
    assert render(0.05) == "`0.05`"
    assert render(32 * 1024 * 1024, "max_bytes") == "`33554432` (32 MiB)"
    assert render(12 * 3600, "session_ttl_s") == "`43200` (12 h)"
    assert render(14 * 86_400, "url_ttl_s") == "`1209600` (14 days)"
    assert render(["reviewer", "admin"]) == '`["reviewer", "admin"]`'
    assert table_script.table([table_script.Row("a", "DATAENGINE_A", "`x`", "a | b")]).endswith(
        "| `DATAENGINE_A` | `x` | a \\| b |")
    # GitHub would take <data_dir> for an HTML tag and a*b for emphasis
    assert table_script._cell("empty: <data_dir>/sources. w*h, `a<b`") == "empty: `<data_dir>/sources`. w\\*h, `a<b`"


def test_a_new_setting_without_a_row_is_caught(table_script: ModuleType) -> None:
    """What CI sees when someone adds a setting and forgets the tables."""
    from pydantic import Field

    class Extended(Settings):
        brand_new_knob: int = Field(3, description="a knob nobody documented")

    class ExtendedDefaults(Extended, table_script._CodeDefaults):
        pass

    diff = table_script.differences(ExtendedDefaults(data_dir=Path(table_script._DATA_DIR)))
    assert "+| `DATAENGINE_BRAND_NEW_KNOB` | `3` | a knob nobody documented |" in diff


# ------------------------------------------------------------------------------------------- keys
def _object_keys(body: str) -> list[str]:
    """The property names of a JS object literal's body (top level only; spreads and computed keys skipped)."""
    keys: list[str] = []
    depth, i, entry_start = 0, 0, 0
    while i <= len(body):
        ch = body[i] if i < len(body) else ","
        if ch in "\"'`":
            end = body.index(ch, i + 1)
            i = end + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            head = body[entry_start:i].split(":", 1)
            key = head[0].strip()
            if len(head) == 2 and not key.startswith("..."):
                keys.append(key[1:-1] if key[:1] in "\"'" else key)
            entry_start = i + 1
        i += 1
    return keys


def _literal_body(text: str, open_brace: int) -> str:
    """The text between the brace at ``open_brace`` and its match (strings skipped)."""
    depth, i = 0, open_brace
    while True:
        ch = text[i]
        if ch in "\"'`":
            i = text.index(ch, i + 1) + 1
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_brace + 1:i]
        i += 1


_KEY_MAP = re.compile(r"(?:\bPAGE_KEYS|\bown|\bthis\.keys)\s*=\s*\{|\bkeys:\s*\{")
_COMPARED = re.compile(r"""key(?:\.toLowerCase\(\))?\s*===\s*"([^"]+)\"""")
_MODIFIER = re.compile(r"(?<!!)e\.(shift|ctrl)Key")


def page_keys() -> set[str]:
    """Every key the queue page binds, as the README writes it."""
    found: set[str] = set()
    for path in sorted(QUEUE_JS.rglob("*.js")):
        text = path.read_text(encoding="utf-8")
        for match in _KEY_MAP.finditer(text):
            found.update(_object_keys(_literal_body(text, match.end() - 1)))
        if re.search(r"\bown\[String\(i\)\]", text):  # digits select the masks / objects
            found.add("1–9")
        for line in text.splitlines():
            for key in _COMPARED.findall(line):
                modifiers = {m.capitalize() for m in _MODIFIER.findall(line)}
                if key.lower() == "z" and modifiers:
                    found.update(f"{m}+Z" for m in modifiers)
                else:
                    found.add(key)
    for keys in LABEL_KEYS.values():  # the verdict keys the API sends with each task
        found.update(keys.values())
    return {_KEY_NAMES.get(k, k.upper() if len(k) == 1 else k) for k in found}


def _key_table() -> str:
    text = _readme()
    start, end = text.find("<!-- keys:start"), text.find("<!-- keys:end -->")
    assert 0 <= start < end, "README.md needs its key table between <!-- keys:start … --> and <!-- keys:end -->"
    return text[start:end]


def test_the_key_reader_finds_the_page_s_keys() -> None:
    keys = page_keys()
    # a sample from each source: page keys, help, undo, a kind's own, the video player, the API's label keys
    assert {"K", "F", "V", "L", "?", "Shift+Z", "Ctrl+Z", "Z", "X", "Enter", "Tab", "1–9", "←", "Home", "A",
            "M", "S", "Space", "Esc", "[", "]"} <= keys
    assert "..." not in " ".join(keys)


def test_every_bound_key_is_in_the_readme() -> None:
    named = set(re.findall(r"`([^`]+)`", _key_table()))
    missing = sorted(page_keys() - named)
    assert not missing, f"keys the queue page binds that README.md's key table does not name: {missing}"


# ------------------------------------------------------------------------------------------ facts
def test_the_password_rule_is_stated() -> None:
    assert f"Passwords: {MIN_LENGTH}–{MAX_LENGTH} characters" in _readme()


def test_exported_file_names_say_what_they_are_relative_to() -> None:
    text = _readme()
    assert "relative to the media root" in text and "DATAENGINE_MEDIA_ROOT" in text
    assert "being built stage by stage" not in text
