"""Print the requirements of dataengine and of the given extras, one a line, read from pyproject.toml.

    python scripts/requirements.py                  the base package (the light install)
    python scripts/requirements.py flower           plus the flower extra
    python scripts/requirements.py models,flower    extras comma- or space-separated

An extra that names the package's own extras (``models`` lists ``dataengine[nlp]``) is expanded, so
the output is what pip would install for ``dataengine[EXTRAS]`` less the package itself. The
Dockerfile installs this list before it copies the code (editing the code then downloads nothing);
tests/test_light_install.py reads the same list for the API image. Standard library only: it runs
in a bare python image.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def normalise(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(extras: list[str], pyproject: Path = PYPROJECT) -> list[str]:
    """The base dependencies and those of ``extras``, the package's own extras expanded, in order,
    without repeats. An unknown extra raises KeyError."""
    project = tomllib.loads(pyproject.read_text())["project"]
    own = normalise(project["name"])
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    out: list[str] = []
    seen: set[str] = set()

    def add(lines: list[str]) -> None:
        for line in lines:
            match = _NAME.match(line)
            if match and normalise(match.group(1)) == own:  # dataengine[nlp]: expand the extra
                for extra in (match.group(2) or "").split(","):
                    if extra.strip() and extra.strip() not in seen:
                        seen.add(extra.strip())
                        add(optional[extra.strip()])
            elif line not in out:
                out.append(line)

    add(list(project["dependencies"]))
    for extra in extras:
        if extra not in seen:
            seen.add(extra)
            add(optional[extra])
    return out


def main(argv: list[str]) -> int:
    extras = [part for arg in argv for part in arg.split(",") if part.strip()]
    try:
        lines = requirements([e.strip() for e in extras])
    except KeyError as exc:
        print(f"unknown extra {exc}; see [project.optional-dependencies] in pyproject.toml", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
