"""What each role may do. Every API endpoint names the permission it needs; admins may do all."""

from __future__ import annotations

import enum

from engine.domain.vocabulary import Role


class Permission(enum.StrEnum):
    QUEUE = "queue"  # lease tasks, submit verdicts, click-to-segment
    GOLD = "gold"  # manage gold (honeypot) items
    DASHBOARD = "dashboard"  # queue, throughput and quality figures
    JOBS_READ = "jobs_read"  # mining jobs and their failures
    JOBS_WRITE = "jobs_write"  # start mining jobs, retry failed items
    IMAGES = "images"  # read images by id
    USERS = "users"  # create, change, disable people; see everyone's tokens
    EXPORTS = "exports"  # write training-set exports, read dataset snapshots and manifests


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.ANNOTATOR: frozenset({Permission.QUEUE, Permission.IMAGES}),
    Role.REVIEWER: frozenset({Permission.QUEUE, Permission.IMAGES, Permission.GOLD}),
    Role.ML_ENGINEER: frozenset({Permission.DASHBOARD, Permission.JOBS_READ, Permission.JOBS_WRITE,
                                 Permission.IMAGES, Permission.EXPORTS}),
}


def allowed(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[Role(role)]
