"""The OpenAPI schema's error responses: every operation documents the one error shape.

A drf-spectacular postprocessing hook: each operation gains the statuses it can answer
besides success (400 for bad input, 401 without credentials, 403 for a read-only member,
404 for what the user may not see, 413 for an oversized body, 429 when throttled),
all as ``Error`` (``webapp/api/errors.py``), so a generated client knows them.
"""
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "What is wrong, in words"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "Field or parameter name -> what is wrong with it"},
        "problems": {"type": "array", "description": "A refused dataset: every problem found, by file",
                     "items": {"type": "object", "required": ["file", "message"],
                               "properties": {"file": {"type": "string", "description": "Path inside the "
                                                       "dataset or zip; empty when no one file is at fault"},
                                              "message": {"type": "string"}}}},
    },
    "required": ["error"],
}
ALWAYS = {"400": "Bad input: `fields` names what is wrong", "401": "No or invalid credentials",
          "403": "Your role in this team is read-only", "429": "Too many requests; see Retry-After"}
WITH_BODY = {"413": "The request body is too large"}
WITH_ID = {"404": "No such object among your teams'"}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            statuses = {**ALWAYS}
            if method in ("post", "put", "patch"):
                statuses.update(WITH_BODY)
            if "{" in path:
                statuses.update(WITH_ID)
            responses = operation.setdefault("responses", {})
            for code, description in statuses.items():
                responses.setdefault(code, {"description": description, "content": reference})
    return result
