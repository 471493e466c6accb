"""The datasets API: upload, list, retrieve (class table, split summary), change names and colours, delete."""
from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from engine.data.index import MAX_CLASSES
from webapp.api.fields import MemberTeamField
from webapp.api.parsers import BoundedJSONParser
from webapp.datasets.deletion import DatasetInUse, delete_dataset
from webapp.datasets.editing import MAX_NAME_LENGTH, UpdateRefused, update_dataset
from webapp.datasets.ingest import ingest_zip
from webapp.datasets.models import MAX_DESCRIPTION_LENGTH, Dataset
from webapp.teams.access import require_write, visible


class DatasetClassSerializer(serializers.Serializer):
    index = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    color = serializers.CharField(read_only=True, help_text='Display colour, "#rrggbb"')
    pixel_share = serializers.FloatField(read_only=True, help_text="Share of the labelled pixels")
    num_images = serializers.IntegerField(read_only=True, help_text="Masks that contain the class")


class SplitSummarySerializer(serializers.Serializer):
    train = serializers.IntegerField(source="info.num_train", read_only=True, allow_null=True,
                                     help_text="Images in the train split file; null without split files")
    val = serializers.IntegerField(source="info.num_val", read_only=True, allow_null=True,
                                   help_text="Images in the val split file; null without split files")


class DatasetSerializer(serializers.ModelSerializer):
    team = serializers.StringRelatedField()
    classes = DatasetClassSerializer(many=True, read_only=True)
    num_classes = serializers.IntegerField(read_only=True)
    splits = SplitSummarySerializer(source="*", read_only=True)

    class Meta:
        model = Dataset
        fields = ["id", "name", "team", "description", "num_classes", "classes", "splits", "num_images",
                  "num_labeled", "num_unlabeled", "info", "created_at"]


@extend_schema_field({"oneOf": [
    {"type": "string", "pattern": "^#?[0-9a-fA-F]{6}$", "example": "#e6194b"},
    {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255}, "minItems": 3, "maxItems": 3},
]})
class ColorField(serializers.Field):
    """A colour as classes.json writes it; ``engine.data.index.relabel_classes`` reads it."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


class ClassChangeSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The class to change (0 = the first)")
    name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                 help_text="New name: unique, at most 100 characters, no control characters")
    color = ColorField(required=False, help_text='New display colour, "#rrggbb" or [r, g, b]; RGB masks are '
                                                 "still decoded through the colours of classes.json")


class ClassChangesField(serializers.ListField):
    """Errors name the entry as ``classes[2]``, so a position in the list is not read as a class index."""

    def run_child_validation(self, data):
        try:
            return super().run_child_validation(data)
        except ValidationError as error:
            raise ValidationError({f"classes[{i}]": detail for i, detail in error.detail.items()}) from None


class DatasetUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=MAX_NAME_LENGTH)
    description = serializers.CharField(required=False, allow_blank=True, max_length=MAX_DESCRIPTION_LENGTH)
    classes = ClassChangesField(child=ClassChangeSerializer(), required=False, max_length=MAX_CLASSES,
                                    help_text="Only the classes to change; the others keep their names and colours")


class DatasetUploadSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    team = MemberTeamField()
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_DESCRIPTION_LENGTH)
    archive = serializers.FileField(help_text="A zip of images/ and masks/ (+ optional classes.json)")

    def validate_archive(self, archive):
        if archive.size > settings.SEGLAB_MAX_UPLOAD_BYTES:
            raise serializers.ValidationError(f"{archive.size} bytes is over the limit of "
                                              f"{settings.SEGLAB_MAX_UPLOAD_BYTES}")
        return archive


class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                     mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = DatasetSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return visible(Dataset.objects.select_related("team"), self.request.user)

    def get_parsers(self):
        # An upload carries a zip, an edit is JSON. DRF asks before it sets self.action.
        method = getattr(self.request, "method", "").lower()
        if (getattr(self, "action_map", None) or {}).get(method) == "partial_update":
            return [BoundedJSONParser()]
        return super().get_parsers()

    @extend_schema(request=DatasetUploadSerializer, responses={201: DatasetSerializer})
    def create(self, request, *args, **kwargs):
        upload = DatasetUploadSerializer(data=request.data, context={"request": request})
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        require_write(data["team"], request.user)
        dataset = ingest_zip(data["team"], data["name"], data["archive"], request.user, data["description"])
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=DatasetUpdateSerializer, responses={200: DatasetSerializer})
    def partial_update(self, request, *args, **kwargs):
        dataset = self.get_object()
        require_write(dataset.team, request.user)
        change = DatasetUpdateSerializer(data=request.data)
        change.is_valid(raise_exception=True)
        try:
            dataset = update_dataset(dataset, **change.validated_data)
        except UpdateRefused as error:
            raise ValidationError(error.fields) from None
        return Response(DatasetSerializer(dataset).data)

    def perform_destroy(self, instance):
        require_write(instance.team, self.request.user)
        try:
            delete_dataset(instance)
        except DatasetInUse as error:
            raise ValidationError({"dataset": str(error)}) from None
