"""One error shape for the whole API: ``{"error": "...", "fields": {name: message}}``."""
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from engine.config import ConfigError
from webapp.datasets.ingest import UploadError


def _flatten(detail) -> str:
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    return str(detail)


def error_response(message: str, fields: dict | None = None, status_code: int = status.HTTP_400_BAD_REQUEST) -> Response:
    body = {"error": message}
    if fields:
        body["fields"] = fields
    return Response(body, status=status_code)


def exception_handler(exc, context):
    if isinstance(exc, ConfigError):
        return error_response("Invalid experiment configuration: " + str(exc), exc.errors)
    if isinstance(exc, UploadError):
        return error_response("The dataset was refused: " + str(exc),
                              {"archive": [f"{f}: {m}" if f else m for f, m in exc.errors]})
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError) and isinstance(exc.detail, dict):
        fields = {key: _flatten(value) for key, value in exc.detail.items()}
        response.data = {"error": _flatten(exc.detail), "fields": fields}
    else:
        response.data = {"error": _flatten(getattr(exc, "detail", str(exc)))}
    return response
