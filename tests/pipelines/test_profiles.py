"""A job's model profile: its model stages use that profile's models, others the settings' own."""

from __future__ import annotations

from engine.db.session import session_scope
from engine.services import mine
from pipelines.context import TaskContext
from pipelines.stages import job_models
from tests.conftest import make_settings
from tests.factories import jpeg_bytes, photo


def test_model_stages_use_the_jobs_profile(database_url, tmp_path):
    settings = make_settings(database_url, tmp_path)
    assert settings.model_profile == "tiny"
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.jpg").write_bytes(jpeg_bytes(photo(1 if name == "a" else 2)))
    with session_scope(settings.db_url) as s:
        real = mine.plan_job(s, settings, str(tmp_path / "a"), job_name="real", model_profile="sam3").job_id
        default = mine.plan_job(s, settings, str(tmp_path / "b"), job_name="default").job_id
    ctx = TaskContext.from_settings(settings)
    with session_scope(settings.db_url) as s:
        chosen = job_models(ctx, s, real)
        assert chosen.settings.model_profile == "sam3" and chosen is not ctx.models
        assert job_models(ctx, s, real) is chosen  # built once per process
        assert chosen.settings.db_url == settings.db_url  # everything else is the settings' own
        assert job_models(ctx, s, default) is ctx.models
    # re-planning without a profile keeps the job's own; naming one changes it
    with session_scope(settings.db_url) as s:
        mine.plan_job(s, settings, str(tmp_path / "a"), job_name="real")
        assert job_models(ctx, s, real).settings.model_profile == "sam3"
        mine.plan_job(s, settings, str(tmp_path / "a"), job_name="real", model_profile="tiny")
        assert job_models(ctx, s, real) is ctx.models
