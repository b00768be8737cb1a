"""Data Engine core: settings, database, pure domain logic, sources and stage services.

Importable without Celery, FastAPI or torch. Never imports annotators, pipelines or web.
"""
