"""The OpenAPI 3.1 document of the admin API, built from its route table and its
pydantic models (servers/admin_models.py): pydantic writes every schema; this module
only lays out the paths, parameters and responses that the route table declares."""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from .. import __version__
from .admin_models import Error

REF = "#/components/schemas/{model}"
ERRORS = {"400": "malformed request (JSON)", "401": "no token, or an unknown one",
          "403": "the token is revoked", "404": "no such object or path",
          "405": "method not allowed here", "409": "exists already, or still in use",
          "422": "invalid parameters or body", "429": "too many failed logins"}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # OpenAPI spelling: /accounts/{system_id}
    handler: str  # AdminApi method name
    summary: str
    response: Any  # a model, or list[model]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    body_type: str = "application/json"  # or text/csv (a raw body)
    path_types: tuple[tuple[str, str], ...] = ()  # (name, "integer"|"string")


def document(endpoints: list[Endpoint], prefix: str) -> dict:
    models: set[Any] = {Error}
    for e in endpoints:
        models.update(m for m in (e.body, e.query, _item(e.response)) if m is not None)
    pairs = [(m, "validation" if m in _requests(endpoints) else "serialization")
             for m in sorted(models, key=lambda m: m.__name__)]
    _keys, schema = models_json_schema(pairs, ref_template=REF)
    paths: dict[str, dict] = {}
    for e in endpoints:
        paths.setdefault(prefix + e.path, {})[e.method.lower()] = _operation(e)
    return {
        "openapi": "3.1.0",
        "info": {"title": "smsgate admin API", "version": __version__,
                 "description": "SPEC §10. Every request needs `Authorization: Bearer "
                                "TOKEN` (`smsgate admin token add NAME`)."},
        "paths": paths,
        "components": {"schemas": schema.get("$defs", {}),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


def _requests(endpoints: list[Endpoint]) -> set:
    return {m for e in endpoints for m in (e.body, e.query) if m is not None}


def _item(response: Any) -> Any:
    args = getattr(response, "__args__", None)
    return args[0] if args else response


def _ref(model: Any) -> dict:
    if getattr(model, "__args__", None):  # list[Model]
        return {"type": "array", "items": _ref(model.__args__[0])}
    return {"$ref": REF.format(model=model.__name__)}


def _operation(e: Endpoint) -> dict:
    op: dict = {"operationId": e.handler, "summary": e.summary,
                "parameters": _parameters(e), "responses": {
                    str(e.status): {"description": "OK", "content": {
                        "application/json": {"schema": _ref(e.response)}}}}}
    for code, text in ERRORS.items():
        op["responses"][code] = {"description": text, "content": {
            "application/json": {"schema": _ref(Error)}}}
    if e.body is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _ref(e.body)}}}
    elif e.body_type == "text/csv":
        op["requestBody"] = {"required": True, "content": {
            "text/csv": {"schema": TypeAdapter(str).json_schema()}}}
    return op


def _parameters(e: Endpoint) -> list[dict]:
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"type": kind, **({"minimum": 1, "maximum": 2**63 - 1}
                                           if kind == "integer" else {"minLength": 1})}}
              for name, kind in e.path_types]
    if e.query is not None:
        schema = e.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            arms = [a for a in prop.get("anyOf", ()) if a != {"type": "null"}]
            if len(arms) == 1:  # optional: a query parameter is absent, never null
                prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **arms[0]}
            params.append({"name": name, "in": "query", "required": name in required,
                           "schema": prop})
    return params
