"""The root command group's handling of a missing extra: a command that needs a library this install
lacks (the model libraries, spaCy) ends with one line naming the extra to install, not a traceback."""

from __future__ import annotations

from typing import Any

import click

from engine.extras import missing_extra


class ExtrasGroup(click.Group):
    """A click group that turns :class:`engine.extras.ExtraMissing` (or an ImportError of one of the
    extras' modules, from a path that did not ask first) into ``Error: <one line>`` and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            missing = missing_extra(exc)
            if missing is None:
                raise
            raise click.ClickException(str(missing)) from exc
