"""Pages of at most ``MAX_LIMIT`` rows; a limit or offset that is not a sane whole number is a 400.

DRF's LimitOffsetPagination passes any offset to the database, where a number past
PostgreSQL's bigint is a 500; here both parameters are checked and named.
"""
from rest_framework.pagination import LimitOffsetPagination

from webapp.api.params import whole_number

MAX_LIMIT = 500
MAX_OFFSET = 10**9


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def get_limit(self, request):
        limit = whole_number(request, self.limit_query_param, self.default_limit, 0, 10**9)
        return max(1, min(limit, self.max_limit))

    def get_offset(self, request):
        return whole_number(request, self.offset_query_param, 0, 0, MAX_OFFSET)
