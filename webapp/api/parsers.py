"""JSON bodies within the size Django allows other bodies (``DATA_UPLOAD_MAX_MEMORY_SIZE``).

DRF's JSONParser reads the whole stream whatever its size; this one stops at the limit,
so a 10 MB body is a 413 in the API's error shape instead of megabytes parsed (and a
form-encoded or multipart body is limited by Django itself, see ``errors.py``).
NaN and Infinity literals are refused as DRF's strict JSON refuses them.
"""
import io

from django.conf import settings
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser


class BodyTooLarge(APIException):
    status_code = 413
    default_code = "too_large"

    def __init__(self):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(f"the request body is larger than {limit // 2**20} MiB; send less (upload datasets as a zip "
                         "file field, which has its own limit)")


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge()
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise BodyTooLarge()
        return super().parse(io.BytesIO(body), media_type, parser_context)
