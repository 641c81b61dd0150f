"""``/api/views``: list, save, open and delete saved views over HTTP, as owner or teammate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_server import write_auth_file
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.testclient import TestClient

from nano_export import api, tokens
from nano_export.settings import Settings


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    write_auth_file(settings)
    with TestClient(Starlette(routes=api.routes(settings))) as test_client:
        yield test_client


def auth(engine: Engine, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.create_token(engine, name=user)}"}


def test_save_share_open_and_delete_over_http(client: TestClient, engine: Engine) -> None:
    ann, ada = auth(engine, "ann"), auth(engine, "ada")
    body = {
        "name": "openai fails",
        "dataset": "performance-metrics",
        "filters": {"provider": ["openai"], "success": False},
        "columns": ["execution_id", "model"],
        "shared": True,
    }
    saved = client.post("/api/views", json=body, headers=ann)
    assert saved.status_code == 201, saved.text
    assert saved.json()["owner"] == "ann" and saved.json()["filters"]["success"] is False
    private = client.post("/api/views", json={"name": "mine"}, headers=ann)
    assert private.status_code == 201

    assert [v["name"] for v in client.get("/api/views", headers=ann).json()] == [
        "mine",
        "openai fails",
    ]
    assert [v["name"] for v in client.get("/api/views", headers=ada).json()] == ["openai fails"]
    opened = client.get("/api/views/ann/openai fails", headers=ada)
    assert opened.status_code == 200 and opened.json()["columns"] == ["execution_id", "model"]
    assert client.get("/api/views/ann/mine", headers=auth(engine, "vic")).status_code == 404

    refused = client.delete("/api/views/ann/openai fails", headers=auth(engine, "vic"))
    assert refused.status_code == 403, refused.text
    assert client.delete("/api/views/mine", headers=ann).json() == {"deleted": "ann/mine"}
    assert client.get("/api/views/mine", headers=ann).status_code == 404


def test_bad_bodies_are_422_with_the_reason_and_no_credentials_401(
    client: TestClient, engine: Engine
) -> None:
    ann = auth(engine, "ann")
    bad_where = client.post(
        "/api/views", json={"name": "x", "filters": {"where": "cost_usd >> 1"}}, headers=ann
    )
    assert bad_where.status_code == 422 and "error" in bad_where.json()
    unknown = client.post("/api/views", json={"name": "x", "colour": "red"}, headers=ann)
    assert unknown.status_code == 422 and "colour" in unknown.json()["error"]
    slash = client.post("/api/views", json={"name": "a/b"}, headers=ann)
    assert slash.status_code == 422 and "bad view name" in slash.json()["error"]
    assert client.get("/api/views").status_code == 401
    assert client.get("/api/views", headers=ann).json() == []
