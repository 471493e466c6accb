from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from engine.config import config_schema
from engine.methods import list_methods
from engine.models import list_models

CatalogueSerializer = inline_serializer("Catalogue", {
    "architectures": serializers.ListField(child=serializers.DictField(), help_text="name, family, paper, options"),
    "methods": serializers.ListField(child=serializers.DictField(), help_text="name, family, paper, options"),
    "config": serializers.ListField(child=serializers.DictField(),
                                    help_text="every run setting with default, range, help"),
})


@extend_schema(responses=CatalogueSerializer)
@api_view(["GET"])
def catalogue(request):
    """Everything a user can choose, read from the engine's registries and schema."""
    return Response({"architectures": list_models(), "methods": list_methods(), "config": config_schema()})
