from rest_framework.decorators import api_view
from rest_framework.response import Response

from engine.config import config_schema
from engine.methods import list_methods
from engine.models import list_models


@api_view(["GET"])
def catalogue(request):
    """Everything a user can choose, read from the engine's registries and schema."""
    return Response({"architectures": list_models(), "methods": list_methods(), "config": config_schema()})
