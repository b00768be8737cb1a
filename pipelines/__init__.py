"""Celery execution: app and config, queues, thin named tasks, stage order, job runner."""
