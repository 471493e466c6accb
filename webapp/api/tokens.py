"""The asking user's API tokens: list, make (the key is in the response, once), revoke."""
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from webapp.accounts.models import ApiToken


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at"]
        read_only_fields = ["prefix", "created_at", "last_used_at"]


class NewTokenSerializer(TokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Send it as `Authorization: Token <key>`; shown only here")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "key"]


class TokenViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = TokenSerializer

    def get_queryset(self):
        return ApiToken.objects.filter(user=self.request.user)

    @extend_schema(request=TokenSerializer, responses={201: NewTokenSerializer})
    def create(self, request, *args, **kwargs):
        payload = TokenSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        token, key = ApiToken.issue(request.user, payload.validated_data["name"])
        token.key = key
        return Response(NewTokenSerializer(token).data, status=status.HTTP_201_CREATED)
