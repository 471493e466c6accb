"""DRF's rate throttles over the shared Redis cache, which let requests through while that cache is down.

Throttling protects the server; it must not take the API down with Redis (the broker
being restarted, say): a failed cache read is logged and the request is served.
"""
import logging

from rest_framework import throttling

logger = logging.getLogger(__name__)


class _Forgiving:
    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception as error:  # redis-py raises its own connection errors
            logger.warning("throttling skipped: the cache is unreachable (%s)", error.__class__.__name__)
            return True


class UserRateThrottle(_Forgiving, throttling.UserRateThrottle):
    pass


class AnonRateThrottle(_Forgiving, throttling.AnonRateThrottle):
    pass
