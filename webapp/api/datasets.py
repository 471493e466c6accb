from django.conf import settings
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from webapp.datasets.ingest import ingest_zip
from webapp.api.fields import MemberTeamField
from webapp.datasets.deletion import DatasetInUse, delete_dataset
from webapp.datasets.models import MAX_DESCRIPTION_LENGTH, Dataset
from webapp.teams.models import Team
from webapp.teams.access import require_write, teams_of, visible


class DatasetSerializer(serializers.ModelSerializer):
    team = serializers.StringRelatedField()

    class Meta:
        model = Dataset
        fields = ["id", "name", "team", "description", "status", "classes", "num_images", "num_labeled",
                  "num_unlabeled", "info", "created_at"]


class DatasetUploadSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    team = MemberTeamField()
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_DESCRIPTION_LENGTH)
    archive = serializers.FileField(help_text="A zip of images/ and masks/ (+ optional classes.json)")

    def validate_archive(self, archive):
        if archive.size > settings.SEGLAB_MAX_UPLOAD_BYTES:
            raise serializers.ValidationError(f"{archive.size} bytes is over the limit of {settings.SEGLAB_MAX_UPLOAD_BYTES}")
        return archive


class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                     mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = DatasetSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return visible(Dataset.objects.select_related("team"), self.request.user)

    def create(self, request, *args, **kwargs):
        upload = DatasetUploadSerializer(data=request.data, context={"request": request})
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        require_write(data["team"], request.user)
        dataset = ingest_zip(data["team"], data["name"], data["archive"], request.user, data["description"])
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        require_write(instance.team, self.request.user)
        try:
            delete_dataset(instance)
        except DatasetInUse as error:
            raise ValidationError({"dataset": str(error)}) from None
