"""A probe for load balancers and container healthchecks: answers over plain http too."""
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    """200 when the database answers; no login needed and nothing about the data revealed."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # the probe's whole job is to say "down" instead of raising
        return JsonResponse({"status": "down", "database": error.__class__.__name__}, status=503)
    return JsonResponse({"status": "ok"})
