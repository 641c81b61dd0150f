"""The OpenAPI 3.1 description of the HTTP API (``GET /api/openapi.json``)."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from nano_export.datasets import dictionary_markdown
from nano_export.formats import FORMATS
from nano_export.models import ExportRequest
from nano_export.views import ViewRequest

_REF = "#/components/schemas/{model}"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_EXPORT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "dataset": {"type": "string"},
        "status": {
            "type": "string",
            "enum": ["queued", "running", "succeeded", "failed", "cancelled", "expired"],
        },
        "rows_done": {"type": "integer"},
        "rows_total": {"type": ["integer", "null"]},
        "bytes": {"type": ["integer", "null"]},
        "sha256": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
        "owner": {"type": "string", "description": "Only with ?all=1 (admins)."},
    },
    "required": ["id", "dataset", "status", "rows_done", "created_at"],
}

_ID = {"name": "export_id", "in": "path", "required": True, "schema": {"type": "string"}}
_UNAUTHORIZED = _error("Missing, invalid, revoked or expired credentials.")
_NOT_FOUND = _error("No such export, or not the caller's (admins see all).")


@cache
def openapi_document() -> dict[str, Any]:
    """The API description, with the request body schema generated from ``ExportRequest``."""
    _, generated = models_json_schema(
        [(ExportRequest, "validation"), (ViewRequest, "validation")], ref_template=_REF
    )
    schemas: dict[str, Any] = dict(generated.get("$defs", {}))
    schemas["Export"] = _EXPORT
    schemas["Error"] = {
        "type": "object",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
    }
    schemas["SavedView"] = _VIEW
    export_ref = {"$ref": "#/components/schemas/Export"}
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "nano-export",
            "version": "1",
            "description": "Export LLM agent evaluation data as CSV. Authenticate with "
            "'Authorization: Bearer TOKEN' (nano-export tokens create NAME) or the dashboard's "
            "login cookie.\n\n## Data dictionary\n\nThe columns of each dataset, as "
            "exported (before any rename).\n\n" + dictionary_markdown(),
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "nano_export_auth"},
            },
        },
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": {
            "/api/exports": {
                "post": {
                    "summary": "Start an export",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ExportRequest"}
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Accepted; poll GET /api/exports/{id}.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "id": {"type": "string"},
                                            "status": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        "401": _UNAUTHORIZED,
                        "403": _error("Privacy level above the caller's role."),
                        "422": _error("Invalid request: body, dataset, column or filter."),
                        "429": _error("The caller already runs the most exports allowed."),
                    },
                },
                "get": {
                    "summary": "The caller's exports, newest first",
                    "parameters": [
                        {
                            "name": "all",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["1"]},
                            "description": "Admins only: everyone's exports, with 'owner'.",
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "Exports.",
                            "content": {
                                "application/json": {
                                    "schema": {"type": "array", "items": export_ref}
                                }
                            },
                        },
                        "401": _UNAUTHORIZED,
                        "403": _error("?all=1 from a caller who is not an admin."),
                    },
                },
            },
            "/api/exports/{export_id}": {
                "get": {
                    "summary": "One export's status and progress",
                    "parameters": [_ID],
                    "responses": {
                        "200": {
                            "description": "The export.",
                            "content": {"application/json": {"schema": export_ref}},
                        },
                        "401": _UNAUTHORIZED,
                        "404": _NOT_FOUND,
                    },
                }
            },
            "/api/exports/{export_id}/download": {
                "get": {
                    "summary": "The export's file, streamed from disk",
                    "parameters": [_ID],
                    "responses": {
                        "200": {
                            "description": "The file, with a Content-Disposition file name.",
                            "content": {
                                "text/csv": {"schema": {"type": "string"}},
                                **{
                                    f.content_type: {
                                        "schema": {"type": "string", "contentEncoding": "binary"}
                                    }
                                    for f in FORMATS.values()
                                    if f.name != "csv"
                                },
                            },
                        },
                        "401": _UNAUTHORIZED,
                        "404": _NOT_FOUND,
                        "409": _error("The export has no file: not finished, failed or expired."),
                    },
                }
            },
            "/api/health": {
                "get": {
                    "summary": "Database, export store, workers, queued and running exports",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": '{"status": "ok", "database": "ok", "storage": "ok", '
                            '"workers": {"kind", "live"}, "queued", "running", "reasons": [], '
                            '"warnings": []}'
                        },
                        "503": {"description": 'the same, "status": "unavailable", with reasons'},
                    },
                }
            },
            "/api/metrics": {
                "get": {
                    "summary": "Prometheus text: exports by status, rows and bytes written, "
                    "durations, failures by reason (admin, or NANO_EXPORT_METRICS_PUBLIC=true)",
                    "responses": {
                        "200": {"description": "Prometheus text exposition format"},
                        "401": {"description": "no valid credentials"},
                        "403": {"description": "not an admin"},
                    },
                }
            },
        },
    }
    doc["paths"].update(_view_paths())
    return doc


_VIEW: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "owner": {"type": "string"},
        "dataset": {"type": "string"},
        "filters": {"$ref": "#/components/schemas/FilterSpec"},
        "columns": {"type": ["array", "null"], "items": {"type": "string"}},
        "shared": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
    "required": ["name", "owner", "dataset", "filters", "shared"],
}


def _view_paths() -> dict[str, Any]:
    view = {"$ref": "#/components/schemas/SavedView"}
    one = {"description": "The view.", "content": {"application/json": {"schema": view}}}
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "The caller's view NAME, or OWNER/NAME for a teammate's shared view.",
    }
    missing = _error("No such view that the caller may open.")
    return {
        "/api/views": {
            "get": {
                "summary": "The caller's saved views and those teammates share",
                "responses": {
                    "200": {
                        "description": "Views, the caller's first.",
                        "content": {
                            "application/json": {"schema": {"type": "array", "items": view}}
                        },
                    },
                    "401": _UNAUTHORIZED,
                },
            },
            "post": {
                "summary": "Save (or replace) one of the caller's views",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ViewRequest"}}
                    },
                },
                "responses": {
                    "201": {"description": "Saved.", "content": one["content"]},
                    "401": _UNAUTHORIZED,
                    "422": _error("Invalid name, dataset, column or filter."),
                },
            },
        },
        "/api/views/{name}": {
            "get": {
                "summary": "One saved view",
                "parameters": [name],
                "responses": {"200": one, "401": _UNAUTHORIZED, "404": missing},
            },
            "delete": {
                "summary": "Delete one of the caller's views (admins: anyone's)",
                "parameters": [name],
                "responses": {
                    "200": {"description": '{"deleted": "OWNER/NAME"}'},
                    "401": _UNAUTHORIZED,
                    "403": _error("The view is someone else's."),
                    "404": missing,
                },
            },
        },
    }
