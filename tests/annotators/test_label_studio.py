"""The Label Studio bridge against a real Label Studio 1.23.2 (its own virtual environment, started
once per test session from a pre-migrated data directory; see tests/labelstudio_server.py).

Annotations are made through Label Studio's API as a person's editor would send them: brush regions in
its RLE, polygons in percent, one choice."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools import mask as mask_utils
from sqlalchemy import select

from annotators.label_studio import LabelStudioClient, LabelStudioError, connect, pull, push
from dataengine.cli.main import cli
from engine.db.models import (
    BridgeState,
    Decider,
    HumanTask,
    Image,
    ImageConcept,
    LabelStudioAnnotation,
    LabelStudioTask,
    Mask,
    MaskState,
    Polarity,
    Role,
    TaskKind,
    TaskState,
    User,
    Verdict,
    VerdictSource,
)
from engine.db.session import session_scope
from engine.domain import labelstudio as lsf
from engine.domain.masks import RleMask, decode_mask
from engine.services import labelstudio as bridge
from engine.services.queue import next_task
from engine.services.users import create_user
from engine.settings import FetchSettings, LabelStudioSettings, Settings
from engine.storage import LocalMediaStore
from tests import labelstudio_server
from tests.conftest import LOCAL_FETCH, LOCAL_FETCH_ENV, make_settings
from tests.factories import seed_review_items
from tests.web.live import LiveServer
from web.app import create_app

# the first test of a fresh machine installs Label Studio (~80 s) and migrates its template (~50 s)
pytestmark = pytest.mark.timeout(1800)
SIGNING = "signing-secret-for-tests-0123456789"
HOOK = "webhook-secret-for-tests"


@pytest.fixture(scope="session")
def label_studio() -> Iterator[labelstudio_server.LabelStudioServer]:
    try:
        server = labelstudio_server.start()
    except labelstudio_server.LabelStudioSetupError as exc:
        pytest.fail(f"Label Studio could not be set up for the bridge tests (they never skip): {exc}", pytrace=False)
    yield server
    labelstudio_server.stop(server)


@pytest.fixture
def ls_settings(database_url: str, tmp_path: Path, label_studio) -> Settings:
    settings = make_settings(database_url, tmp_path, labelstudio=LabelStudioSettings(
        url=label_studio.url, token=label_studio.token, signing_secret=SIGNING, webhook_secret=HOOK,
        batch_size=2, page_size=2))
    settings.queue.multi_review_rate = 0.0
    settings.queue.gold_rate = 0.0
    return settings


@pytest.fixture
def sqlite_settings(fresh_sqlite_url: str, tmp_path: Path, label_studio) -> Settings:
    settings = make_settings(fresh_sqlite_url, tmp_path, labelstudio=LabelStudioSettings(
        url=label_studio.url, token=label_studio.token, signing_secret=SIGNING, webhook_secret=HOOK))
    settings.queue.multi_review_rate = 0.0
    return settings


@pytest.fixture
def client(label_studio) -> LabelStudioClient:
    return LabelStudioClient(label_studio.url, label_studio.token, fetch=FetchSettings(**LOCAL_FETCH))


def project_name() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def seed(settings: Settings, **kwargs: Any) -> dict[str, list[int]]:
    with session_scope(settings.db_url) as s:
        return seed_review_items(s, settings.media_path, **kwargs)


def ls_tasks(client: LabelStudioClient, project_id: int) -> list[dict[str, Any]]:
    return [t.model_dump(mode="json") for t in client.sdk.tasks.list(project=project_id, fields="all")]


def choice(label: str) -> dict[str, Any]:
    return {"type": "choices", "from_name": "verdict", "to_name": "image", "value": {"choices": [label]}}


def annotate(client: LabelStudioClient, ls_task_id: int, results: list[dict[str, Any]], lead_time: float = 3.0):
    return client.sdk.annotations.create(id=ls_task_id, result=results, lead_time=lead_time)


def pixels(mask: Mask) -> np.ndarray:
    return decode_mask(RleMask(mask.rle_counts, mask.height, mask.width, (0, 0, 0, 0), mask.area))


def by_our_task(tasks: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {t["data"]["de_task_id"]: t for t in tasks}


# ------------------------------------------------------------------------------ verify, end to end
def test_verify_push_pull_twice_and_an_edit(ls_settings, client):
    seed(ls_settings, n_images=2, phrases=("dog",), masks_per_pair=2, kinds=("verify_mask",))
    report = push(ls_settings, client, TaskKind.VERIFY_MASK, project=project_name(), limit=3)
    assert (report.pushed, report.batches, report.created) == (3, 2, True)

    with session_scope(ls_settings.db_url) as s:
        holder = s.scalars(select(User).where(User.username == bridge.BRIDGE_USER)).one()
        tasks = {t.id: t for t in s.scalars(select(HumanTask))}
        leased = [t for t in tasks.values() if t.state == TaskState.LEASED]
        assert len(leased) == 3 and all(t.lease_owner_id == holder.id for t in leased)
        annotator = create_user(s, "ann", "a-long-password-1", Role.ANNOTATOR)
        # our own queue hands out only the task that stayed here
        open_ids = [t.id for t in tasks.values() if t.state == TaskState.OPEN]
        assert next_task(s, annotator.id, list(TaskKind), 600).id == open_ids[0]
        assert next_task(s, annotator.id, list(TaskKind), 600) is None
        mask_of = {t.id: s.get(Mask, t.mask_id) for t in leased}
        mask_pixels = {tid: pixels(m) for tid, m in mask_of.items()}

    there = by_our_task(ls_tasks(client, report.project_id))
    assert set(there) == {t.id for t in leased}
    for task_id, task in there.items():  # the candidate mask went out pixel-exact, as a prediction
        (prediction,) = task["predictions"]
        (region,) = prediction["result"]
        assert region["value"]["brushlabels"] == ["instance"] and prediction["model_version"] == "dataengine"
        assert np.array_equal(lsf.decode_brush(region["value"]["rle"], 64, 96), mask_pixels[task_id])
        assert task["data"]["phrase"] == "dog" and "/signed?expires=" in task["data"]["image"]

    first, second, untouched = sorted(there)
    accepted = annotate(client, there[first]["id"], [*there[first]["predictions"][0]["result"], choice("accept")], 4.25)
    annotate(client, there[second]["id"], [choice("reject")], 2.0)

    summary = pull(ls_settings, client)
    assert (summary.report.count("stored"), summary.report.failures, summary.tasks) == (2, [], 2)
    with session_scope(ls_settings.db_url) as s:
        verdicts = {v.task_id: v for v in s.scalars(select(Verdict))}
        assert set(verdicts) == {first, second}
        v = verdicts[first]
        author = s.get(User, v.user_id)
        assert (v.source, v.label, v.duration_ms, v.mask_id) == (VerdictSource.LABEL_STUDIO, "accept", 4250,
                                                                 mask_of[first].id)
        assert author.username.startswith("ls-1@127.0.0.1-") and author.password_hash is None
        assert verdicts[second].label == "reject"
        assert s.get(Mask, mask_of[first].id).state == MaskState.ACCEPTED
        assert s.get(Mask, mask_of[second].id).state == MaskState.REJECTED
        assert s.get(Mask, mask_of[second].id).decided_by == Decider.HUMAN
        assert s.get(HumanTask, first).state == TaskState.DONE
        assert s.get(HumanTask, untouched).state == TaskState.LEASED

    again = pull(ls_settings, client)  # nothing new: nothing stored twice
    assert (again.report.count("stored"), again.report.count("unchanged")) == (0, 2)

    client.sdk.annotations.update(id=accepted.id, result=[choice("reject")])
    edited = pull(ls_settings, client)
    assert (edited.report.count("replaced"), edited.report.count("unchanged")) == (1, 1)
    with session_scope(ls_settings.db_url) as s:
        rows = list(s.scalars(select(Verdict).where(Verdict.task_id == first).order_by(Verdict.id)))
        assert [r.label for r in rows] == ["accept", "reject"] and rows[1].supersedes_id == rows[0].id
        assert s.get(Mask, mask_of[first].id).state == MaskState.REJECTED
        assert s.scalar(select(LabelStudioTask.state).where(LabelStudioTask.task_id == first)) == BridgeState.DONE
    assert pull(ls_settings, client).report.count("unchanged") == 2


# ------------------------------------------------------------------------------ corrections
def test_correction_with_brush_and_polygon_round_trips_pixel_exact(ls_settings, client):
    seed(ls_settings, n_images=1, phrases=("cup",), masks_per_pair=2, kinds=("correct",))
    report = push(ls_settings, client, TaskKind.CORRECT, project=project_name())
    assert report.pushed == 1
    (task,) = ls_tasks(client, report.project_id)
    kept, dropped = task["predictions"][0]["result"]
    drawn = np.zeros((64, 96), bool)
    drawn[40:60, 50:90] = True
    drawn[45:50, 60:70] = False  # a hole
    polygon = [[5.0, 50.0], [30.0, 50.0], [30.0, 95.0], [5.0, 95.0]]
    results = [kept, lsf.brush_result(drawn, "new1"),
               {"id": "p1", "type": "polygonlabels", "from_name": "polygon", "to_name": "image", "original_width": 96,
                "original_height": 64, "image_rotation": 0,
                "value": {"points": polygon, "polygonlabels": ["instance"]}},
               choice("corrected")]
    annotate(client, task["id"], results, 12.5)
    assert pull(ls_settings, client).report.count("stored") == 1

    with session_scope(ls_settings.db_url) as s:
        (verdict,) = s.scalars(select(Verdict))
        assert (verdict.label, verdict.duration_ms) == ("corrected", 12500)
        masks = {m.id: m for m in s.scalars(select(Mask).order_by(Mask.id))}
        kept_id, dropped_id = int(kept["id"][1:]), int(dropped["id"][1:])
        assert masks[kept_id].state == MaskState.ACCEPTED and masks[dropped_id].state == MaskState.REJECTED
        new = [masks[i] for i in verdict.payload["new_mask_ids"]]
        assert len(new) == 2 and all(m.state == MaskState.ACCEPTED for m in new)
        assert np.array_equal(pixels(new[0]), drawn)  # the brush mask, pixel for pixel
        expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(
            [[c for x, y in polygon for c in (x * 96 / 100, y * 64 / 100)]], 64, 96))).astype(bool)
        assert np.array_equal(pixels(new[1]), expected)
        pair = s.scalars(select(ImageConcept)).one()
        assert (pair.polarity, pair.is_exhaustive, pair.decided_by) == (Polarity.POSITIVE, True, Decider.HUMAN)


# ------------------------------------------------------------------------------ bad annotations
def test_bad_annotations_are_recorded_and_nothing_of_them_is_stored(sqlite_settings, client):
    settings = sqlite_settings
    seed(settings, n_images=2, phrases=("dog", "cat"), masks_per_pair=1, kinds=("check_exhaustivity",))
    report = push(settings, client, TaskKind.CHECK_EXHAUSTIVITY, project=project_name())
    assert report.pushed == 4
    a, b, c, d = (t["id"] for t in sorted(ls_tasks(client, report.project_id), key=lambda t: t["id"]))
    wrong_size = lsf.brush_result(np.ones((32, 48), bool), "w")
    unknown_label = lsf.brush_result(np.ones((64, 96), bool), "u")
    unknown_label["value"]["brushlabels"] = ["person"]
    annotate(client, a, [choice("maybe")])
    annotate(client, b, [wrong_size, choice("complete")])
    annotate(client, c, [unknown_label, choice("missing")])
    fixable = annotate(client, d, [])

    first = pull(settings, client)
    errors = {o.ls_task_id: o.error for o in first.report.failures}
    assert set(errors) == {a, b, c, d} and first.report.count("stored") == 0
    assert "unknown choice 'maybe'" in errors[a]
    assert "drawn on a 48×32 image, ours is 96×64" in errors[b]
    assert "unknown region label ['person']" in errors[c]
    assert "no choice made" in errors[d]
    with session_scope(settings.db_url) as s:
        assert s.scalars(select(Verdict)).all() == []
        assert s.scalars(select(Mask).where(Mask.state != MaskState.CANDIDATE)).all() == []
        assert {t.state for t in s.scalars(select(HumanTask))} == {TaskState.LEASED}
        assert {link.state for link in s.scalars(select(LabelStudioTask))} == {BridgeState.FAILED}
        assert len(s.scalars(select(LabelStudioAnnotation)).all()) == 4

    second = pull(settings, client)  # the same versions are not tried (nor recorded) again
    assert second.report.count("unchanged") == 4
    client.sdk.annotations.update(id=fixable.id, result=[choice("not_present")])
    third = pull(settings, client)
    assert (third.report.count("stored"), third.report.count("unchanged")) == (1, 3)
    with session_scope(settings.db_url) as s:
        (verdict,) = s.scalars(select(Verdict))
        assert verdict.label == "not_present"
        pair = s.scalars(select(ImageConcept).where(ImageConcept.id == verdict.pair_id)).one()
        assert pair.polarity == Polarity.NEGATIVE


# ------------------------------------------------------------------------------ webhook and images
@pytest.fixture
def live(ls_settings) -> Iterator[str]:
    server = LiveServer(create_app(ls_settings)).start()
    ls_settings.labelstudio.public_url = server.url
    try:
        yield server.url
    finally:
        server.stop()


def wait_for(condition, timeout_s: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_webhook_stores_created_and_updated_annotations(ls_settings, client, live):
    seed(ls_settings, n_images=1, phrases=("dog",), masks_per_pair=2, kinds=("verify_mask",))
    hook = f"{live}/api/v1/labelstudio/webhook"
    report = push(ls_settings, client, TaskKind.VERIFY_MASK, project=project_name(), webhook_url=hook)
    assert report.webhook and report.pushed == 2
    first, _ = sorted(ls_tasks(client, report.project_id), key=lambda t: t["id"])
    made = annotate(client, first["id"], [choice("ungroundable")], 1.5)

    def verdicts() -> list[tuple[str, int | None]]:
        with session_scope(ls_settings.db_url) as s:
            return [(v.label, v.supersedes_id) for v in s.scalars(select(Verdict).order_by(Verdict.id))]

    assert wait_for(verdicts) == [("ungroundable", None)]
    client.sdk.annotations.update(id=made.id, result=[choice("accept")])
    wait_for(lambda: len(verdicts()) == 2)
    later = verdicts()
    assert later[1][0] == "accept" and later[1][1] is not None
    pulled = pull(ls_settings, client).report  # the annotation's latest version is stored already
    assert (pulled.count("unchanged"), len(pulled.outcomes)) == (1, 1)

    event = {"action": "ANNOTATION_CREATED", "task": {"id": first["id"]}, "annotation": {"id": 1}}
    assert httpx.post(hook, json=event).status_code == 403
    assert httpx.post(hook, json=event, headers={"X-DataEngine-Webhook-Secret": "wrong"}).status_code == 403
    ignored = httpx.post(hook, json={"action": "PROJECT_UPDATED"}, headers={"X-DataEngine-Webhook-Secret": HOOK})
    assert ignored.json() == {"status": "ignored", "action": "PROJECT_UPDATED"}
    unknown = httpx.post(hook, json={**event, "task": {"id": 10**9}}, headers={"X-DataEngine-Webhook-Secret": HOOK})
    assert unknown.json()["status"] == "unknown"


def test_label_studio_loads_images_through_signed_urls(ls_settings, client, live):
    seed(ls_settings, n_images=1, phrases=("dog",), masks_per_pair=1, kinds=("verify_mask",))
    report = push(ls_settings, client, TaskKind.VERIFY_MASK, project=project_name())
    (task,) = ls_tasks(client, report.project_id)
    url = task["data"]["image"]
    assert url.startswith(live)
    with session_scope(ls_settings.db_url) as s:
        image = s.scalars(select(Image)).one()
        stored = LocalMediaStore(ls_settings.media_path).open_bytes(image.storage_key)
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == stored
    assert response.headers["content-type"] == "image/png"
    assert httpx.get(url[:-4] + "0000").status_code == 403  # another signature
    assert httpx.get(url.replace(f"/images/{image.id}/", f"/images/{image.id + 1}/")).status_code == 403
    assert httpx.get(f"{live}/api/v1/images/{image.id}").status_code == 401  # the plain route still needs a log-in


# ------------------------------------------------------------------------------ refusals
def test_wrong_token_unreachable_server_and_mismatched_project(sqlite_settings, label_studio, client):
    settings = sqlite_settings
    seed(settings, n_images=1, phrases=("dog",), masks_per_pair=1, kinds=("verify_mask",))
    with pytest.raises(LabelStudioError, match="refused the API token"):
        connect(settings, token="0" * 40)
    with pytest.raises(LabelStudioError, match="cannot reach Label Studio at http://127.0.0.1:9"):
        connect(settings, url="http://127.0.0.1:9")
    with pytest.raises(LabelStudioError, match="not an http"):
        connect(settings, url="ftp://example.org")

    title = project_name()
    other = '<View><Image name="image" value="$image"/><Choices name="verdict" toName="image">' \
            '<Choice value="yes"/><Choice value="no"/></Choices></View>'
    client.sdk.projects.create(title=title, label_config=other)
    with pytest.raises(LabelStudioError, match="does not match --kind verify_mask: .*no <BrushLabels"):
        push(settings, client, TaskKind.VERIFY_MASK, project=title)
    # a project made for one kind is refused for another
    verify_project = project_name()
    push(settings, client, TaskKind.VERIFY_MASK, project=verify_project, limit=1)
    with pytest.raises(LabelStudioError, match="choices are \\['accept', 'reject', 'ungroundable'\\]"):
        push(settings, client, TaskKind.CHECK_EXHAUSTIVITY, project=verify_project)
    settings.labelstudio.signing_secret = None
    with pytest.raises(LabelStudioError, match="signing_secret"):
        push(settings, client, TaskKind.VERIFY_MASK, project=verify_project)
    with session_scope(settings.db_url) as s:
        assert len(s.scalars(select(LabelStudioTask)).all()) == 1
        assert sorted(t.state for t in s.scalars(select(HumanTask))) == [TaskState.LEASED]


def test_a_failed_import_leases_nothing(sqlite_settings, client):
    """Label Studio refuses the import (its project is gone): the batch's leases roll back."""
    settings = sqlite_settings
    seed(settings, n_images=1, phrases=("dog", "cat"), masks_per_pair=1, kinds=("verify_mask",))
    project_id, _ = client.project_for(project_name(), TaskKind.VERIFY_MASK)
    client.sdk.projects.delete(id=project_id)
    from annotators.label_studio import _push_batch

    with pytest.raises(LabelStudioError, match="HTTP 404"):
        _push_batch(settings, client, TaskKind.VERIFY_MASK, project_id, 10, SIGNING)
    with session_scope(settings.db_url) as s:
        assert {t.state for t in s.scalars(select(HumanTask))} == {TaskState.OPEN}
        assert s.scalars(select(LabelStudioTask)).all() == []


# ------------------------------------------------------------------------------ the CLI
def test_cli_push_and_pull(sqlite_settings, label_studio, client, monkeypatch):
    settings = sqlite_settings
    seed(settings, n_images=1, phrases=("dog",), masks_per_pair=2, kinds=("verify_mask",))
    for key, value in {"DATAENGINE_DATABASE_URL": settings.db_url, "DATAENGINE_MEDIA_ROOT": str(settings.media_path),
                       "DATAENGINE_DATA_DIR": str(settings.data_dir),
                       "DATAENGINE_LABELSTUDIO__SIGNING_SECRET": SIGNING,
                       "DATAENGINE_LABELSTUDIO__TOKEN": label_studio.token, **LOCAL_FETCH_ENV}.items():
        monkeypatch.setenv(key, value)
    title = project_name()
    runner = CliRunner()
    result = runner.invoke(cli, ["labelstudio", "push", "--url", label_studio.url, "--kind", "verify",
                                 "--project", title, "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert f"project '{title}'" in result.output and "created" in result.output
    assert "pushed 1 task(s)" in result.output
    project_id = client.find_project(title)[0]
    (task,) = ls_tasks(client, project_id)
    annotate(client, task["id"], [choice("accept")])
    result = runner.invoke(cli, ["labelstudio", "pull", "--url", label_studio.url])
    assert result.exit_code == 0, result.output
    assert "1 stored" in result.output and "0 failed" in result.output
    result = runner.invoke(cli, ["labelstudio", "pull", "--url", label_studio.url, "--project", title])
    assert "0 stored" in result.output and "1 already stored" in result.output
    result = runner.invoke(cli, ["labelstudio", "pull", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "cannot reach Label Studio" in result.output
