"""The settings reference, generated from ``engine.settings.Settings`` so that it cannot drift from the code.

    python scripts/settings_table.py            print every setting as markdown (one table per group)
    python scripts/settings_table.py --write    rewrite the generated parts of docs/settings.md and README.md
    python scripts/settings_table.py --check    exit 1, with a diff, when either file differs from the code

Each row is one leaf of the settings object (nested pydantic models are walked): its environment
variable (``DATAENGINE_`` + the field path joined by ``__``, upper case), its default as the code has
it and its ``Field(description=...)``. Defaults are read from a settings object built from nothing but
the code (no environment variable, no TOML file), with ``data_dir`` a placeholder: a default derived
from it by the settings' validator (the SQLite URL, the media root, the model cache) is shown as
``<data_dir>/…``. Lists and dicts are JSON; byte counts and long durations get a readable note.

docs/settings.md holds every setting; README.md holds the few most people set (``README_SETTINGS``)
and links to the rest. Both are generated between the markers ``<!-- settings:start -->`` and
``<!-- settings:end -->``; tests/test_readme.py fails when a file differs from what this prints, so a
new setting (or a changed default) without its row fails CI: run ``--write`` and commit both files.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import re
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file from any folder
    sys.path.insert(0, str(ROOT))

from pydantic import BaseModel, SecretStr  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402
from pydantic_core import to_jsonable_python  # noqa: E402
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource  # noqa: E402

from engine.settings import Settings  # noqa: E402

START = "<!-- settings:start -->"
END = "<!-- settings:end -->"
DOCS = ROOT / "docs" / "settings.md"
README = ROOT / "README.md"
PREFIX = "DATAENGINE_"
_DATA_DIR = "/__data_dir__"  # the placeholder data_dir whose derived defaults are shown as <data_dir>/…

#: the settings README.md lists (dotted paths; a group's name lists all its leaves), in this order
README_SETTINGS: tuple[str, ...] = (
    "data_dir", "database_url", "broker_url", "media_root", "model_profile", "log_level",
    "batch_sizes",
    "models.device", "models.cache_dir",
    "sources.allowed_roots", "fetch.allow_networks", "fetch.allow_ports",
    "queue.lease_s", "queue.gold_rate", "queue.multi_review_rate", "queue.undo_window_s",
    "queue.max_leases_per_person",
    "routing.target_precision", "routing.audit_rate",
    "serve.host", "serve.port", "serve.workers", "serve.secure_cookies",
    "labelstudio.public_url", "labelstudio.signing_secret",
    "observability.log_format", "observability.metrics_token",
)


@dataclass(frozen=True)
class Row:
    """One setting: its dotted path, environment variable, rendered default and description."""

    path: str
    env: str
    default: str
    description: str


@dataclass(frozen=True)
class Group:
    """The scalar settings of one (nested) model: ``path`` empty for the top level."""

    path: str
    title: str
    rows: tuple[Row, ...]


class _CodeDefaults(Settings):
    """Settings from keyword arguments only: the defaults as the code has them, whatever the environment."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def code_defaults() -> Settings:
    """The settings object the code alone gives, ``data_dir`` the placeholder."""
    return _CodeDefaults(data_dir=Path(_DATA_DIR))


# ------------------------------------------------------------------------------------------ walking
def _model_class(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _choices(annotation: Any) -> list[str]:
    """The values a Literal (or an optional Literal) allows, else none."""
    if get_origin(annotation) is Literal:
        return [str(to_jsonable_python(a)) for a in get_args(annotation)]
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _choices(args[0])
    return []


def _title(cls: type[BaseModel]) -> str:
    """The first paragraph of the model's own docstring (not an inherited one), on one line."""
    doc = cls.__dict__.get("__doc__")
    if not doc:
        return ""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def groups(settings: Settings | None = None) -> list[Group]:
    """Every model of the settings object in declaration order, depth first, each with its scalar settings."""
    root = settings if settings is not None else code_defaults()
    found: list[Group] = []
    _walk(root, type(root), (), found)
    return found


def _walk(value: BaseModel, cls: type[BaseModel], path: tuple[str, ...], found: list[Group]) -> None:
    rows: list[Row] = []
    nested: list[tuple[str, BaseModel, type[BaseModel]]] = []
    for name, field in cls.model_fields.items():
        child = getattr(value, name)
        sub = _model_class(field.annotation)
        if sub is not None:
            nested.append((name, child, sub))
        else:
            rows.append(_row((*path, name), field, child))
    title = _title(cls) if path else "The top level: where data lives, which services and models are used."
    if rows:
        found.append(Group(".".join(path), title, tuple(rows)))
    for name, child, sub in nested:
        _walk(child, sub, (*path, name), found)


def _row(path: tuple[str, ...], field: FieldInfo, value: Any) -> Row:
    if path == ("data_dir",):  # the placeholder stands in for it: show the code's own default
        value = field.get_default(call_default_factory=True)
    description = " ".join((field.description or "").split())
    choices = _choices(field.annotation)
    if choices:
        listed = ", ".join(f"`{c}`" for c in choices)
        description = f"{description} (one of {listed})" if description else f"one of {listed}"
    return Row(".".join(path), PREFIX + "__".join(path).upper(), render(value, path[-1]), description)


def rows(settings: Settings | None = None) -> list[Row]:
    """Every setting, in the order of :func:`groups`."""
    return [row for group in groups(settings) for row in group.rows]


# ---------------------------------------------------------------------------------------- rendering
def render(value: Any, name: str = "") -> str:
    """A default as the table shows it: markdown code, stable across machines and runs."""
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "set (secret)"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Enum):
        text = str(value.value)
    elif isinstance(value, (list, tuple, dict, set)):
        text = json.dumps(to_jsonable_python(value), ensure_ascii=False)
    elif isinstance(value, float):
        text = str(int(value)) if value.is_integer() else repr(value)
    else:
        text = str(value)
    text = text.replace(_DATA_DIR, "<data_dir>")
    note = _note(value, name)
    return f"`{text}`" + (f" ({note})" if note else "")


def _note(value: Any, name: str) -> str:
    """A readable size for byte counts and a readable span for long durations in seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return ""
    if name.endswith("_bytes"):
        for unit, size in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
            if value >= size and value % size == 0:
                return f"{int(value // size)} {unit}"
        return ""
    if name.endswith("_s") and value >= 3600:
        for unit, size in (("days", 86_400), ("h", 3600)):
            if value % size == 0 and (unit == "h" or value >= 2 * size):
                return f"{int(value // size)} {unit}"
    return ""


def _cell(text: str) -> str:
    """Text for a table cell: pipes escaped; outside code spans a placeholder such as ``<data_dir>/media`` made
    code, any other ``<`` and ``*`` escaped (an HTML tag, emphasis)."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        plain = _PLACEHOLDER.sub(lambda m: f"\x00{m.group(0)}\x00", parts[i])  # <data_dir>/x → code
        plain = plain.replace("<", "&lt;").replace("*", "\\*")
        parts[i] = re.sub("\x00([^\x00]*)\x00", lambda m: "`" + m.group(1).replace("&lt;", "<") + "`", plain)
    return "`".join(parts).replace("|", "\\|")


_PLACEHOLDER = re.compile(r"<[A-Za-z_]+>(?:[^\s;,)]*[^\s;,.)])?")


def table(selected: list[Row]) -> str:
    lines = ["| variable | default | description |", "|---|---|---|"]
    lines += [f"| `{r.env}` | {_cell(r.default)} | {_cell(r.description)} |" for r in selected]
    return "\n".join(lines)


def docs_block(settings: Settings | None = None) -> str:
    """Every setting: one heading and table per group."""
    parts: list[str] = []
    for group in groups(settings):
        if group.path:
            heading = f"### `{group.path}` (`{PREFIX}{group.path.replace('.', '__').upper()}__…`)"
        else:
            heading = "### top level"
        parts += [heading, "", group.title, "", table(list(group.rows)), ""] if group.title else \
            [heading, "", table(list(group.rows)), ""]
    return "\n".join(parts).rstrip("\n")


def readme_block(settings: Settings | None = None) -> str:
    """The settings README.md lists (README_SETTINGS), with the count of all of them."""
    everything = rows(settings)
    by_path = {r.path: r for r in everything}
    selected: list[Row] = []
    for wanted in README_SETTINGS:
        if wanted in by_path:
            selected.append(by_path[wanted])
            continue
        members = [r for r in everything if r.path.startswith(wanted + ".")]
        if not members:
            raise KeyError(f"README_SETTINGS names {wanted!r}, which is no setting")
        selected += members
    note = (f"These are {len(selected)} of the {len(everything)} settings; "
            "[docs/settings.md](docs/settings.md) lists every one with its default and meaning.")
    return table(selected) + "\n\n" + note


# ------------------------------------------------------------------------------------------ files
def replace_block(text: str, block: str, where: str = "") -> str:
    """``text`` with what lies between the markers replaced by ``block``."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"{where or 'the text'} needs exactly one {START} … {END} block")
    return pattern.sub(lambda _: f"{START}\n{block}\n{END}", text)


def generated(settings: Settings | None = None) -> dict[Path, str]:
    """What docs/settings.md and README.md should hold, by path."""
    defaults = settings if settings is not None else code_defaults()
    return {
        DOCS: replace_block(DOCS.read_text(encoding="utf-8"), docs_block(defaults), str(DOCS)),
        README: replace_block(README.read_text(encoding="utf-8"), readme_block(defaults), str(README)),
    }


def differences(settings: Settings | None = None) -> str:
    """A unified diff of each file against what it should hold; empty when both match."""
    out: list[str] = []
    for path, wanted in generated(settings).items():
        have = path.read_text(encoding="utf-8")
        if have != wanted:
            rel = path.relative_to(ROOT)
            out += difflib.unified_diff(have.splitlines(keepends=True), wanted.splitlines(keepends=True),
                                        f"{rel} (as committed)", f"{rel} (from engine/settings.py)")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the generated parts of the files")
    action.add_argument("--check", action="store_true", help="exit 1 with a diff when a file differs")
    args = parser.parse_args(argv)
    if args.write:
        for path, text in generated().items():
            if path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
                print(f"wrote {path.relative_to(ROOT)}")
        return 0
    if args.check:
        diff = differences()
        if diff:
            sys.stdout.write(diff)
            print("\nthe settings tables differ from engine/settings.py: python scripts/settings_table.py --write")
            return 1
        return 0
    print(docs_block())
    return 0


if __name__ == "__main__":
    sys.exit(main())
