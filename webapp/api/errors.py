"""One error shape for the whole API: ``{"error": "...", "fields": {name: message}}``.

Validation, authentication, permission, throttling, parse errors, oversized bodies and
paths no endpoint serves all answer in it, with string messages.
"""
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as ModelValidationError
from django.http import JsonResponse
from django.views.defaults import page_not_found
from django.views.defaults import server_error as django_server_error
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from engine.config import ConfigError
from webapp.datasets.ingest import UploadError

logger = logging.getLogger(__name__)


def _flatten(detail) -> str:
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    return str(detail)


def error_response(message: str, fields: dict | None = None,
                   status_code: int = status.HTTP_400_BAD_REQUEST) -> Response:
    body = {"error": message}
    if fields:
        body["fields"] = fields
    return Response(body, status=status_code)


def exception_handler(exc, context):
    if isinstance(exc, ConfigError):
        return error_response("Invalid experiment configuration: " + str(exc), exc.errors)
    if isinstance(exc, UploadError):
        return error_response("The dataset was refused: " + str(exc), {"archive": str(exc)})
    if isinstance(exc, ModelValidationError):  # a rule of a plain service function (webapp.review.services)
        fields = {name: " ".join(messages) for name, messages in exc.message_dict.items()} if hasattr(
            exc, "error_dict") else {}
        return error_response(_flatten(fields) if fields else " ".join(exc.messages), fields)
    if isinstance(exc, RequestDataTooBig):
        return error_response(f"the request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 2**20} MiB",
                              status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, SuspiciousOperation):  # too many fields, a malformed multipart body, ...
        return error_response(f"the request was refused: {exc}")
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("unexpected error in %s", context.get("view").__class__.__name__, exc_info=exc)
        return error_response("internal error; the server log has the details",
                              status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, ValidationError) and isinstance(exc.detail, dict):
        fields = {key: _flatten(value) for key, value in exc.detail.items()}
        response.data = {"error": _flatten(exc.detail), "fields": fields}
    else:
        response.data = {"error": _flatten(getattr(exc, "detail", str(exc))) or response.status_text.lower()}
    return response


def not_found(request, exception=None):
    """Django's 404 for paths no view matched: JSON under /api/, the HTML page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": f"no API endpoint at {request.path[:200]}"}, status=404)
    return page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "internal error; the server log has the details"}, status=500)
    return django_server_error(request)
