"""``dataengine demo``: a guided first run. It mines the bundled sample images through every stage,
makes (once) an annotator ``demo`` with a generated password printed that one time, and ends with the
exact commands that show the tasks it made in the queue; ``--serve`` runs them too: it starts the web
server and, where there is a display, opens the sign-in page of the queue."""

from __future__ import annotations

import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import click

from dataengine.cli.context import Context, ensure_schema, pass_ctx
from dataengine.cli.jobs import SAMPLE_IMAGES, _run_mine, base_url
from engine.domain.vocabulary import Role, SourceKind
from engine.extras import require
from engine.settings import Settings

DEMO_USER = "demo"
#: candidate masks per phrase the demo keeps with random weights (models.propose.max_masks_per_phrase
#: unless set): the tiny proposer's noise fills every slot, and a correction task draws a pair's masks
#: at once, so the queue stays readable
DEMO_MAX_MASKS_PER_PHRASE = 8
QUEUE_PATH = "/login?next=/queue"


@dataclass(frozen=True)
class DemoUser:
    """The demo's annotator: its password when this run made it, else None (it existed)."""

    username: str
    password: str | None


@click.command()
@click.option("--serve", "serve_after", is_flag=True,
              help="Then start the web server and open the queue's sign-in page (a browser only where there "
                   "is a display); Ctrl+C stops it.")
@click.option("--port", type=click.IntRange(1, 65_535),
              help="With --serve: the port (default: settings serve.port, 8000).")
@click.option("--no-browser", is_flag=True, help="With --serve: never open a browser.")
@pass_ctx
def demo(ctx: Context, serve_after: bool, port: int | None, no_browser: bool) -> None:
    """Mine the bundled sample images through every stage (tiny models unless the settings say
    otherwise) into the embedded database, print what it produced, make an annotator 'demo' (once;
    its generated password is printed that one time) and print the commands that show its tasks."""
    settings = ctx.settings
    if settings.embedded:  # the stages run in this process: fail now, in one line, not item by item
        require("models", feature="the demo (it runs the models in this process)")
    port = port or settings.serve.port
    if serve_after:  # before minutes of mining
        _check_port_free(settings.serve.host, port)
    mining = demo_settings(settings)
    click.echo(f"database: {settings.masked()['database_url']}\nmedia:    {settings.media_path}")
    summary = _run_mine(mining, str(SAMPLE_IMAGES), job_name="demo", kind=SourceKind.FOLDER, options={},
                        retry_failed=False, until=None, model_profile=None, wait=True, timeout=None,
                        queue_hint=False)
    user = ensure_demo_user(settings)
    print_next_steps(settings, user, summary.human_tasks if summary else 0, _command_prefix(),
                     serving_on=port if serve_after else None)
    if serve_after:
        serve_demo(settings, port, open_browser=not no_browser)


def demo_settings(settings: Settings) -> Settings:
    """The settings the demo mines with: with the tiny profile (random weights, every candidate scores
    below the usual 0.5) the proposal score threshold 0 and DEMO_MAX_MASKS_PER_PHRASE masks per phrase,
    each only where it is not set; a copy, so the server (``--serve``) runs on the settings as they are."""
    mining = settings.model_copy(deep=True)
    propose = mining.models.propose
    if settings.model_profile != "tiny":
        return mining
    told = []
    if "score_threshold" not in propose.model_fields_set:
        propose.score_threshold = 0.0
        told.append("proposal score threshold 0")
    if "max_masks_per_phrase" not in propose.model_fields_set:
        propose.max_masks_per_phrase = DEMO_MAX_MASKS_PER_PHRASE
        told.append(f"at most {DEMO_MAX_MASKS_PER_PHRASE} masks per phrase")
    click.echo("model profile tiny: random-weight models" + (f", {' and '.join(told)} for the demo" if told else ""))
    return mining


def ensure_demo_user(settings: Settings) -> DemoUser:
    """The annotator DEMO_USER: made with a generated password when missing (the password comes back
    once, here), left as it is when it exists."""
    from engine.db.session import session_scope
    from engine.services.users import UserError, UserExists, create_user, find_user

    ensure_schema(settings)
    with session_scope(settings.db_url) as session:
        try:
            find_user(session, DEMO_USER)
            return DemoUser(DEMO_USER, None)
        except UserError:
            pass
        password = generate_password(DEMO_USER)
        try:
            create_user(session, DEMO_USER, password, Role.ANNOTATOR)
        except UserExists:  # made by another process meanwhile
            return DemoUser(DEMO_USER, None)
    return DemoUser(DEMO_USER, password)


def generate_password(username: str) -> str:
    """A random password (96 bits, URL-safe characters) that meets the password policy."""
    from engine.domain.passwords import password_problem

    while True:
        password = secrets.token_urlsafe(12)
        if password_problem(password, username) is None:
            return password


def print_next_steps(settings: Settings, user: DemoUser, tasks: int, prefix: str, *,
                     serving_on: int | None = None) -> None:
    """The closing block: the demo user (its password when it was just made) and the exact commands
    that show the tasks in the queue; ``serving_on`` (a port): the server starts next, so where to sign in."""
    click.echo("")
    click.echo(f"next: judge the {tasks} tasks waiting for a human in the queue" if tasks
               else "next: look at the queue (no task waits for a human now)")
    if user.password is not None:
        click.echo(f"  user {user.username} (annotator) created, password: {user.password}")
        click.echo(f"    shown this once; a new one: {prefix} users passwd {user.username}")
    else:
        click.echo(f"  user {user.username} exists (its password was printed when it was made); "
                   f"a new one: {prefix} users passwd {user.username}")
    if serving_on is not None:
        click.echo(f"  serving now: sign in at {base_url(settings, serving_on)}{QUEUE_PATH} as {user.username} "
                   "(Ctrl+C stops)")
        return
    click.echo(f"  1. {prefix} serve")
    click.echo(f"  2. open {base_url(settings)}{QUEUE_PATH} and sign in as {user.username}")
    click.echo(f"  or both at once: {prefix} demo --serve")
    click.echo(f"  once people have judged some: {prefix} calibrate")


def _command_prefix() -> str:
    """``dataengine``, with the root's ``--config FILE`` when this command was given one."""
    root = click.get_current_context().find_root()
    config_file = root.params.get("config_file")
    return f"dataengine --config {config_file}" if config_file else "dataengine"


def _check_port_free(host: str, port: int) -> None:
    """Fail before serving, with what to do, when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot serve on {host}:{port} ({exc.strerror}): "
                                       "pick another port with --port") from None


def serve_demo(settings: Settings, port: int, *, open_browser: bool) -> None:
    """Run ``dataengine serve`` (one process, serve.host, ``port``) until interrupted; open the queue's
    sign-in page in a browser once the server answers, where there is a display and ``open_browser``."""
    from dataengine.cli.serve import serve

    if open_browser and display_present():
        url = base_url(settings, port) + QUEUE_PATH
        threading.Thread(target=_open_when_up, args=(settings.serve.host, port, url), daemon=True).start()
    click.get_current_context().invoke(serve, host=None, port=port, workers=1)


def display_present(environ: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether a browser can open here: macOS and Windows always, elsewhere only with an X11 or
    Wayland display (a headless server has neither)."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform == "darwin" or platform.startswith("win"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def _open_when_up(host: str, port: int, url: str, within_s: float = 30.0) -> None:
    """Open ``url`` in the browser once the server accepts connections (gives up after ``within_s``)."""
    import webbrowser

    connect = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((connect, port), timeout=1.0):
                break
        except OSError:
            time.sleep(0.2)
    else:
        return
    webbrowser.open(url)
