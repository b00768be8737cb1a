"""A mined video file (H.264 in MP4, with its caption file) handed from stage to stage by the flow,
every stage's video service with fake models: the subjects are video ids from mining to routing."""

from __future__ import annotations

from sqlalchemy import func, select

from engine.db.models import Caption, HumanTask, ImageConcept, Mask, MaskletFrame, StageItem, StageStatus, TaskKind
from engine.db.session import session_scope
from engine.domain.vocabulary import MediaKind
from engine.services import flow, mine, route
from engine.services.video_stages.caption import caption_video_batch
from engine.services.video_stages.negatives import negatives_video_batch
from engine.services.video_stages.parse import parse_video_batch
from engine.services.video_stages.propose import propose_video_batch
from engine.services.video_stages.verify import verify_video_batch
from engine.settings import NegativeSettings, RoutingSettings
from engine.storage import LocalMediaStore
from engine.video_settings import VideoSettings
from pipelines.stages import STAGE_NAMES
from tests.engine.video_stages.fakes import FakeMaskletProposer
from tests.fakes import FakeCaptioner, FakeEmbedder, FakeExhaustivityVerifier, FakeMaskVerifier, FakeParser
from tests.video_synth import write_video


def test_a_mined_video_goes_through_every_stage(settings, tmp_path):
    write_video(tmp_path / "src" / "clip.mp4", count=24, fps=12)  # sampled at 6 fps: 12 frames
    (tmp_path / "src" / "clip.txt").write_text("a red circle and a blue square")
    store = LocalMediaStore(settings.media_path)
    with session_scope(settings.db_url) as s:
        plan = mine.plan_job(s, settings, str(tmp_path / "src"), options={"media": "video"})
    video = VideoSettings(mv_frames=2, ev_keyframes=2)
    services = {
        "mine": lambda s, ids: mine.mine_batch(s, settings, store, plan.job_id, ids),
        "caption": lambda s, ids: caption_video_batch(s, store, FakeCaptioner(default="a red circle"), plan.job_id,
                                                      ids, keyframes=2),
        "parse": lambda s, ids: parse_video_batch(s, FakeParser(), plan.job_id, ids),
        "propose": lambda s, ids: propose_video_batch(s, store, FakeMaskletProposer(), video, plan.job_id, ids),
        "negatives": lambda s, ids: negatives_video_batch(s, store, FakeMaskletProposer(), FakeEmbedder(), None,
                                                          NegativeSettings(), video, plan.job_id, ids),
        "verify": lambda s, ids: verify_video_batch(s, store, FakeMaskVerifier(), FakeExhaustivityVerifier(), 0.5,
                                                    video, plan.job_id, ids),
        "route": lambda s, ids: route.route_batch(s, RoutingSettings(audit_rate=0.0), plan.job_id, ids,
                                                  media=MediaKind.VIDEO),
    }
    ids = plan.pending
    for stage in STAGE_NAMES:
        with session_scope(settings.db_url) as s:
            report = services[stage](s, ids)
            _, ids = flow.hand_over(s, plan.job_id, stage, report.image_ids, STAGE_NAMES)
    with session_scope(settings.db_url) as s:
        items = s.scalars(select(StageItem).where(StageItem.job_id == plan.job_id)).all()
        video_ids = {i.subject_id for i in items}
        assert len(video_ids) == 1
        assert {i.status for i in items} == {StageStatus.DONE}, [(i.stage, i.detail) for i in items]
        assert {i.stage for i in items} == set(STAGE_NAMES[1:])
        texts = set(s.scalars(select(Caption.text)))
        assert texts == {"a red circle and a blue square", "a red circle"}  # the source's and the model's
        assert s.scalar(select(func.count()).select_from(ImageConcept)) == 2
        assert s.scalar(select(func.count()).select_from(Mask)) == 4
        assert s.scalar(select(func.count()).select_from(MaskletFrame)) == 4 * 12
        kinds = dict(s.execute(select(HumanTask.kind, func.count()).group_by(HumanTask.kind)).all())
        assert kinds == {TaskKind.VERIFY_MASK: 4, TaskKind.CHECK_EXHAUSTIVITY: 2}
