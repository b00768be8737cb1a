from fastapi.testclient import TestClient

import migrations
from dataengine.serve import create_app


def test_health_reports_database_and_revision(settings):
    client = TestClient(create_app(settings))
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] in ("sqlite", "postgresql")
    assert body["schema_revision"] == migrations.head()


def test_health_is_503_when_the_database_is_gone(tmp_path):
    from engine.settings import Settings

    settings = Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", media_root=tmp_path)
    response = TestClient(create_app(settings)).get("/api/v1/health")
    assert response.status_code == 503
    assert "database unreachable" in response.json()["detail"]


def test_openapi_is_served(settings):
    assert TestClient(create_app(settings)).get("/openapi.json").json()["info"]["title"] == "Data Engine"
