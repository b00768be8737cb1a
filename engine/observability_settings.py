"""Operators' signals: the log format, the Prometheus endpoint, model warm-up (``Settings.observability``).

The log level stays ``Settings.log_level``. Environment: ``DATAENGINE_OBSERVABILITY__LOG_FORMAT=json``,
``DATAENGINE_OBSERVABILITY__WARM_UP='["segmenter"]'``; TOML: ``[observability]``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

#: the models a warm-up may load, by their ModelCache role: the ones the pages wait on
WARM_UP_ROLES: tuple[str, ...] = ("segmenter", "exemplar_proposer", "video_tracker")


class ObservabilitySettings(BaseModel):
    """Structured logs, the /metrics endpoint and model warm-up (docs/architecture.md, "Operators' signals")."""

    log_format: Literal["text", "json"] = Field(
        "text", description="text: one readable line per record; json: one JSON object per line (ts, level, "
                            "logger, message, request_id, job_id, stage, …) for a log shipper")
    metrics_enabled: bool = Field(True, description="serve GET /metrics (Prometheus text format)")
    metrics_token: SecretStr | None = Field(
        None, description="a bearer token Prometheus sends (Authorization: Bearer …) to read /metrics; without it "
                          "only an admin (session or API token) may read it")
    metrics_max_jobs: int = Field(
        20, ge=0, le=1_000, description="the most running jobs whose per-stage counts /metrics exports (newest)")
    warm_up: list[str] | Literal["auto", "none"] = Field(
        "auto", description="models loaded in a background thread when a server (embedded mode: also the page "
                            "runners' models) or a gpu worker starts, so the first click does not wait for them: "
                            f"a list of {', '.join(WARM_UP_ROLES)}; auto: those the process serves; none: load on "
                            "first use")

    @field_validator("warm_up")
    @classmethod
    def _roles(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, str):
            return value
        unknown = sorted(set(value) - set(WARM_UP_ROLES))
        if unknown:
            raise ValueError(f"unknown model role(s) {', '.join(unknown)}; known: {', '.join(WARM_UP_ROLES)}")
        return list(dict.fromkeys(value))

    def roles(self, served: tuple[str, ...]) -> list[str]:
        """The roles this process warms up, ``served`` being those it runs itself (for ``auto``)."""
        if self.warm_up == "none":
            return []
        if self.warm_up == "auto":
            return list(served)
        return [role for role in self.warm_up if role in served]
