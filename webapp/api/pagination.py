"""Pages of at most ``MAX_LIMIT`` rows; a limit or offset that is not a sane whole number is a 400.

DRF's LimitOffsetPagination passes any offset to the database, where a number past
PostgreSQL's bigint is a 500; here both parameters are checked and named.
"""
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

MAX_LIMIT = 500
MAX_OFFSET = 10**9


def _whole_number(request, name: str, default: int, largest: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(largest)) or int(raw) > largest:
        raise ValidationError({name: f"expected a whole number from 0 to {largest}, got {raw[:40]!r}"})
    return int(raw)


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def get_limit(self, request):
        limit = _whole_number(request, self.limit_query_param, self.default_limit, 10**9)
        return max(1, min(limit, self.max_limit))

    def get_offset(self, request):
        return _whole_number(request, self.offset_query_param, 0, MAX_OFFSET)
