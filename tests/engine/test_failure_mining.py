"""Failure mining on real components: failures read from people's verdicts (given through the
decision model), a prioritised mining job whose pool the tiny random-weight SAM 3 embeds while mining,
and the model stages taking the image most like a failure first."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.db.models import JobItem, MiningJob, StageItem
from engine.db.session import session_scope
from engine.domain.failure_order import BLOCK, failure_scores, priority_order
from engine.domain.similarity import normalise
from engine.failure_settings import FailureMiningSettings
from engine.services import failures
from engine.settings import BatchSizes, DedupSettings, ModelSettings
from pipelines.context import TaskContext
from pipelines.dispatch import InProcessQueue
from pipelines.runner import run_mine
from tests.conftest import make_settings
from tests.factories import jpeg_bytes, photo, seed_labelled

STRICT = FailureMiningSettings(explore_rate=0.0)


# ------------------------------------------------------------------------------ the order (pure)
def test_scores_are_the_best_cosine_to_any_failure_in_blocks():
    rng = np.random.default_rng(3)
    pool = normalise(rng.normal(size=(BLOCK + 37, 16)))
    found = normalise(rng.normal(size=(5, 16)))
    np.testing.assert_allclose(failure_scores(pool, found), (pool @ found.T).max(axis=1), rtol=1e-5)
    assert (failure_scores(pool, np.zeros((0, 0), np.float32)) == -1).all()
    with pytest.raises(ValueError, match="dimensions"):
        failure_scores(pool, normalise(rng.normal(size=(2, 8))))


def test_order_is_by_score_with_an_even_deterministic_explore_share():
    ids = list(range(100, 110))
    scores = [0.1, 0.9, None, 0.5, 0.9, 0.2, None, 0.3, 0.0, 0.7]
    assert priority_order(ids, scores, explore_rate=0, seed=1) == [101, 104, 109, 103, 107, 105, 100, 108, 102, 106]
    explored = priority_order(ids, scores, explore_rate=0.25, seed=1)
    assert sorted(explored) == ids and explored == priority_order(ids, scores, explore_rate=0.25, seed=1)
    assert explored[:3] == [101, 104, 109]  # places 1–3 are the best; every 4th is an explore pick
    assert sorted(priority_order(ids, scores, explore_rate=1.0, seed=5)) == ids
    with pytest.raises(ValueError):
        priority_order(ids, scores[:-1], explore_rate=0, seed=1)


# --------------------------------------------------------------------------- failures from verdicts
def test_failures_are_what_people_found_wrong_with_the_proposer(settings):
    with session_scope(settings.db_url) as s:
        made = seed_labelled(s, settings.media_path)
    with session_scope(settings.db_url) as s:
        found = {f.image_id: f for f in failures.recent_failures(s, 10)}
        counts = failures.failure_counts(s)
        latest_only = failures.recent_failures(s, 1)
        for_cats = failures.recent_failures(s, 10, concept_ids=[_concept(s, "cat")])
    # img0: a person rejected the proposer's mask m1 of "dog", and said "cat" is not present where the
    # proposer had found cat masks
    assert set(found[made["img0"]].kinds) == {"rejected_mask", "false_positive"}
    assert found[made["img0"]].failures == 2
    # the AI's rejections and negatives (img1), a correction that kept a mask (img2) and a person overruling
    # the verifier to accept (img3) are no failures of the proposer
    assert set(found) == {made["img0"]}
    assert counts == {"rejected_mask": 1, "missing_instances": 0, "false_positive": 1}
    assert [f.image_id for f in latest_only] == [made["img0"]]
    assert set(for_cats[0].kinds) == {"false_positive"}


def _concept(s, text):
    from engine.db.models import Concept

    return s.scalar(select(Concept.id).where(Concept.text == text))


# ----------------------------------------------------------------------- a prioritised mining job
@pytest.fixture
def tiny_settings(database_url, tmp_path, models_cache_dir):
    return make_settings(database_url, tmp_path, models=ModelSettings(cache_dir=models_cache_dir, device="cpu"),
                         dedup=DedupSettings(near_duplicates=False), failure_mining=STRICT,
                         batch_sizes=BatchSizes(mine=3, caption=2))


def _pool(tmp_path, with_twin: bool = True):
    """Photos of other seeds and (``with_twin``) a recompressed copy of the labelled image 0 (where people
    found the proposer wrong): it must be taken first."""
    src = tmp_path / "pool"
    src.mkdir()
    for seed in range(40, 48):
        (src / f"a{seed}.jpg").write_bytes(jpeg_bytes(photo(seed, (96, 64)), quality=90))
    if with_twin:
        (src / "z-twin.jpg").write_bytes(jpeg_bytes(photo(1000, (96, 64)), quality=75))
    return src


class Recording(InProcessQueue):
    """The in-process queue, noting each batch's stage and ids in the order they ran."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.ran: list[tuple[str, list[int]]] = []

    def enqueue(self, task, args, *, queue):
        from pipelines.stages import BY_TASK

        self.ran.append((BY_TASK[task].name, list(args[1])))
        return super().enqueue(task, args, queue=queue)


def test_the_image_most_like_a_failure_is_taken_first(tiny_settings, tmp_path):
    settings = tiny_settings
    with session_scope(settings.db_url) as s:
        seed_labelled(s, settings.media_path)
    src = _pool(tmp_path)
    queue = Recording(TaskContext.from_settings(settings))
    result = run_mine(settings, str(src), job_name="prio", until="caption", queue=queue,
                      options={"prioritise_failures": True})
    assert result.report.status == "done"
    stages = [stage for stage, _ in queue.ran]
    first_caption = stages.index("caption")
    assert stages.count("mine") == 3 and set(stages[:first_caption]) == {"mine"}  # the pool first, whole
    with session_scope(settings.db_url) as s:
        job = s.scalar(select(MiningJob).where(MiningJob.name == "prio"))
        items = list(s.scalars(select(JobItem).where(JobItem.job_id == job.id)))
        twin = next(i for i in items if i.key.endswith("z-twin.jpg"))
        ranks = sorted((i.priority_rank, i.image_id) for i in items)
        captioned = list(s.scalars(select(StageItem.subject_id).where(
            StageItem.job_id == job.id, StageItem.stage == "caption").order_by(StageItem.id)))
        assert job.options[failures.VERSION_OPTION]
    assert [r for r, _ in ranks] == list(range(9))
    assert twin.priority_rank == 0 and twin.failure_score == max(i.failure_score for i in items)
    assert queue.ran[first_caption][1][0] == twin.image_id  # the model stages start with it
    assert [image for _, image in ranks] == [image for _, ids in queue.ran if _ == "caption" for image in ids]
    assert sorted(captioned) == sorted(i.image_id for i in items)
    with session_scope(settings.db_url) as s:
        bands = failures.failure_yield(s, job.id)
    assert sum(b.images for b in bands) == 9 and all(b.reviewed == 0 for b in bands)


def test_without_failures_the_pool_keeps_its_order_and_more_items_are_ranked_later(tiny_settings, tmp_path):
    settings = tiny_settings
    src = _pool(tmp_path, with_twin=False)
    first = run_mine(settings, str(src), job_name="cold", until="caption", options={"prioritise_failures": True})
    assert first.report.status == "done"
    with session_scope(settings.db_url) as s:
        items = sorted(s.scalars(select(JobItem).where(JobItem.job_id == first.plan.job_id)),
                       key=lambda i: i.priority_rank)
        assert [i.image_id for i in items] == sorted(i.image_id for i in items)  # no failure: by id
        assert all(i.failure_score is None for i in items)
    (src / "late.jpg").write_bytes(jpeg_bytes(photo(77, (96, 64))))
    again = run_mine(settings, str(src), job_name="cold")  # the job keeps its option; only the new one ranked
    assert again.report.status == "done"
    with session_scope(settings.db_url) as s:
        late = s.scalar(select(JobItem).where(JobItem.job_id == first.plan.job_id, JobItem.key.endswith("late.jpg")))
        assert late.priority_rank == 0 and late.image_id is not None
        assert s.scalar(select(StageItem.status).where(StageItem.job_id == first.plan.job_id,
                                                       StageItem.stage == "caption",
                                                       StageItem.subject_id == late.image_id)) is not None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_cli_flag_sets_the_option_and_video_jobs_are_refused(tiny_settings, tmp_path, monkeypatch):
    from dataengine.cli.main import cli

    settings = tiny_settings
    src = _pool(tmp_path, with_twin=False)
    monkeypatch.setenv("DATAENGINE_DATABASE_URL", settings.db_url)
    monkeypatch.setenv("DATAENGINE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DATAENGINE_MODELS__CACHE_DIR", str(settings.models.cache_dir))
    monkeypatch.setenv("DATAENGINE_DEDUP__NEAR_DUPLICATES", "false")
    runner = CliRunner()
    ok = runner.invoke(cli, ["mine", str(src), "--job", "flagged", "--until", "caption", "--prioritise-failures"])
    assert ok.exit_code == 0, ok.output
    with session_scope(settings.db_url) as s:
        job = s.scalar(select(MiningJob).where(MiningJob.name == "flagged"))
        assert job.options[failures.OPTION] is True
        assert s.scalar(select(JobItem.priority_rank).where(JobItem.job_id == job.id, JobItem.priority_rank == 0)) == 0
    refused = runner.invoke(cli, ["mine", str(src), "--job", "clips", "--media", "video", "--prioritise-failures"])
    assert refused.exit_code != 0 and "video jobs are not ranked" in refused.output


def _judge(s, image_id: int, label: str) -> None:
    """A person's mask verdict on a proposer's mask of "cup" on ``image_id`` (through the decision model)."""
    import datetime as dt
    import uuid

    from engine.db.models import (
        Concept,
        HumanTask,
        ImageConcept,
        ModelKind,
        PairOrigin,
        Polarity,
        Role,
        TaskKind,
        TaskState,
        User,
    )
    from engine.domain.masks import encode_mask
    from engine.repositories.labels import add_mask
    from engine.repositories.model_versions import get_or_create
    from engine.services.annotation import VerdictIn, submit
    from engine.settings import QueueSettings

    user = s.scalar(select(User).where(User.username == "fm-judge")) or User(username="fm-judge", role=Role.ANNOTATOR)
    concept = s.scalar(select(Concept).where(Concept.text == "cup")) or Concept(text="cup")
    s.add_all([user, concept])
    s.flush()
    pair = ImageConcept(image_id=image_id, concept_id=concept.id, polarity=Polarity.UNKNOWN, origin=PairOrigin.CAPTION)
    s.add(pair)
    s.flush()
    grid = np.zeros((64, 96), dtype=bool)
    grid[5:20, 5:30] = True
    mask = add_mask(s, pair.id, get_or_create(s, ModelKind.PROPOSER, "fm-proposer", "1").id, encode_mask(grid))
    s.flush()
    task = HumanTask(kind=TaskKind.VERIFY_MASK, pair_id=pair.id, mask_id=mask.id, state=TaskState.LEASED,
                     lease_owner_id=user.id, reason="test",
                     lease_expires_at=dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1))
    s.add(task)
    s.flush()
    submit(s, task.id, user.id, VerdictIn(client_id=uuid.uuid4().hex, label=label, active_ms=900, masks=[]),
           QueueSettings(multi_review_rate=0.0))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_report_says_how_much_faster_the_order_found_failures(tiny_settings, tmp_path, monkeypatch):
    from dataengine.cli.main import cli

    settings = tiny_settings
    with session_scope(settings.db_url) as s:
        seed_labelled(s, settings.media_path)
    job_id = run_mine(settings, str(_pool(tmp_path)), job_name="prio", until="caption",
                      options={"prioritise_failures": True}).plan.job_id
    with session_scope(settings.db_url) as s:
        by_rank = dict(s.execute(select(JobItem.priority_rank, JobItem.image_id).where(JobItem.job_id == job_id)).all())
        _judge(s, by_rank[0], "reject")  # the first image in the order: the proposer was wrong again
        _judge(s, by_rank[8], "accept")  # the last: it was right
    with session_scope(settings.db_url) as s:
        [job] = [j for j in failures.prioritised_yields(s) if j.job_id == job_id]
    assert [(b.images, b.reviewed, b.with_failure) for b in job.bands] == [(3, 1, 1), (3, 0, 0), (3, 1, 0)]
    assert job.speedup == pytest.approx(2.0)  # 1 failure per review first, 0.5 over the job
    for key, value in {"DATABASE_URL": settings.db_url, "DATA_DIR": str(settings.data_dir),
                       "MEDIA_ROOT": str(settings.media_path)}.items():
        monkeypatch.setenv(f"DATAENGINE_{key}", value)
    monkeypatch.delenv("DATAENGINE_BROKER_URL", raising=False)
    done = CliRunner().invoke(cli, ["report", "--no-official-video"])
    assert done.exit_code == 0, done.output
    section = done.output[done.output.index("model failures people found"):]
    assert "rejected mask 2" in section and "prio" in section and "2.00× faster than random" in section


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_undone_rejection_is_no_failure(settings):
    from engine.db.models import User
    from engine.services.undo import undo_last
    from engine.settings import QueueSettings

    with session_scope(settings.db_url) as s:
        made = seed_labelled(s, settings.media_path)
        _judge(s, made["img3"], "reject")
    with session_scope(settings.db_url) as s:
        assert made["img3"] in {f.image_id for f in failures.recent_failures(s, 10)}
        judge = s.scalar(select(User.id).where(User.username == "fm-judge"))
        undo_last(s, judge, None, QueueSettings())
    with session_scope(settings.db_url) as s:
        assert made["img3"] not in {f.image_id for f in failures.recent_failures(s, 10)}
