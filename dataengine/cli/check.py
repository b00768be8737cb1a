"""``dataengine check [--repair] [--json] [--limit N]``: the database against its written invariants,
like fsck (registered on the main group in dataengine/cli/main.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from dataengine.cli.context import Context, ensure_schema, pass_ctx

if TYPE_CHECKING:
    from engine.services.check import CheckReport, InvariantResult, Repair


def _ids(ids: dict[str, object]) -> str:
    parts = []
    for key, value in ids.items():
        if value is None:
            continue
        parts.append(f"{key} {', '.join(map(str, value))}" if isinstance(value, list) else f"{key} {value}")
    return " · ".join(parts)


@click.command("check")
@click.option("--repair", is_flag=True,
              help="First fix the violations whose repair is unambiguous (M1, T1, T5, F1), "
                   "each one printed and logged.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--limit", type=click.IntRange(min=0), default=100, show_default=True,
              help="Violations listed per invariant (0: all); each invariant's count is always exact.")
@click.option("--orphan-grace", type=click.FloatRange(min=0), default=3600, show_default=True,
              help="F1: seconds a media file no image row names must be old to count as an orphan.")
@click.option("--no-media", is_flag=True, help="Skip the media-store invariants (F1, F2).")
@pass_ctx
def check_cmd(ctx: Context, repair: bool, as_json: bool, limit: int, orphan_grace: float, no_media: bool) -> None:
    """Scan the database for every violation of the label and task invariants (docs/architecture.md,
    engine/domain/invariants.py) and the media store against the image rows (F1 orphan files, F2
    missing files), and print each with the ids involved.

    Exit status: 0 when nothing is violated, 1 when something is (after --repair: when something is
    left). Label contradictions are never repaired here: they need a person."""
    from engine.db.session import session_scope
    from engine.services import check as service

    ensure_schema(ctx.settings)
    if ctx.settings.storage.backend == "s3" and not no_media:  # F1/F2 walk the local media folder
        click.echo("media invariants (F1, F2) skipped: the S3 store is not checked yet", err=True)
        no_media = True
    media = None if no_media else service.MediaCheck(ctx.settings.media_path, orphan_grace)
    repairs: list[service.Repair] = []
    if repair:
        with session_scope(ctx.settings.db_url) as session:
            repairs = service.repair(session, media=media, limit=limit or None)
            session.commit()
    with session_scope(ctx.settings.db_url) as session:
        report = service.check(session, limit_per_invariant=limit or None, media=media)
    if as_json:
        data = report.to_dict()
        if repair:
            data["repairs"] = [r.to_dict() for r in repairs]
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        _print(report, repairs, repair)
    if not report.ok:
        click.get_current_context().exit(1)


def _print(report: CheckReport, repairs: Sequence[Repair], repaired: bool) -> None:
    _print_repairs(report, repairs, repaired)
    for result in report.results:
        _print_result(result)
    _print_summary(report, repaired)


def _print_repairs(report: CheckReport, repairs: Sequence[Repair], repaired: bool) -> None:
    """Each repair made, then (after --repair) how many."""
    for r in repairs:
        click.echo(f"repaired {r.code}  {_ids(r.ids)}: {r.action}")
    if repaired:
        click.echo(f"{len(repairs)} repair(s) committed" + ("; what is left:" if not report.ok else ""))


def _print_result(result: InvariantResult) -> None:
    """One invariant: ok, or its count of violations and those listed with their ids."""
    inv = result.invariant
    if result.ok:
        click.echo(f"{inv.code}  ok  {inv.statement}")
        return
    shown = f" ({len(result.violations)} listed)" if len(result.violations) < result.count else ""
    fix = "repairable with --repair" if inv.repairable else "needs a person"
    click.echo(f"{inv.code}  {result.count} violation(s){shown}, {fix}: {inv.statement}")
    for v in result.violations:
        click.echo(f"    {_ids(v.ids)}: {v.detail}")


def _print_summary(report: CheckReport, repaired: bool) -> None:
    """The closing line: no violations, or how many of which invariants and what can fix them."""
    bad = [r for r in report.results if not r.ok]
    if not bad:
        click.echo(f"check: no violations ({len(report.results)} invariants, {report.seconds:.2f} s)")
        return
    counts = ", ".join(f"{r.invariant.code} {r.count}" for r in bad)
    fixable = [r.invariant.code for r in bad if r.invariant.repairable]
    person = [r.invariant.code for r in bad if not r.invariant.repairable]
    tail = "".join([f"; repairable with --repair: {', '.join(fixable)}" if fixable and not repaired else "",
                    f"; need a person: {', '.join(person)}" if person else ""])
    click.echo(f"check: {report.total} violation(s) of {len(bad)} invariant(s) ({counts}) "
               f"in {report.seconds:.2f} s{tail}")
