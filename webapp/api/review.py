"""Comments, tags and stars on experiments and sweeps (``webapp.review``), over HTTP.

``ReviewActions`` adds ``comments/``, ``tags/`` and ``star/`` to a viewset whose objects are
review targets; ``/comments/{id}/`` reads, edits and deletes one comment. The rules (who
may do what, what a tag may be) are ``webapp.review.services``'.
"""
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from webapp.review import services
from webapp.review.markdown import render
from webapp.review.models import MAX_COMMENT_LENGTH, MAX_TAG_LENGTH, MAX_TAGS, Comment
from webapp.teams.access import require_write


class CommentSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True, allow_null=True)
    html = serializers.SerializerMethodField(help_text="The body's markdown as sanitised HTML")
    experiment = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    sweep = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = Comment
        fields = ["id", "experiment", "sweep", "author", "body", "html", "created_at", "edited_at"]

    def get_html(self, comment) -> str:
        return render(comment.body)


class CommentWriteSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=MAX_COMMENT_LENGTH, trim_whitespace=False,
                                 help_text="Markdown (CommonMark and tables); raw HTML is shown as text")


class TagsSerializer(serializers.Serializer):
    # The limits are checked by webapp.review.services.clean_tags, which names the tag at fault.
    tags = serializers.ListField(child=serializers.CharField(trim_whitespace=False, allow_blank=True),
                                 help_text=f"The whole set (at most {MAX_TAGS}, each 1-{MAX_TAG_LENGTH} letters, "
                                           "digits, spaces or . : + / - _): tags left out are removed")


class StarSerializer(serializers.Serializer):
    starred = serializers.BooleanField(help_text="Whether you starred it")
    stars = serializers.IntegerField(help_text="How many members starred it")


class ReviewFields(serializers.Serializer):
    """Read-only review fields of an experiment or a sweep: from ``with_review``'s annotations
    when the queryset has them, by a query each otherwise (a single object's response)."""

    tags = serializers.SerializerMethodField()
    stars = serializers.SerializerMethodField(help_text="How many members starred it")
    starred = serializers.SerializerMethodField(help_text="Whether you starred it")
    comments = serializers.SerializerMethodField(help_text="How many comments it has")

    def get_tags(self, target) -> list[str]:
        return [tag.name for tag in target.tags.all()]

    def get_stars(self, target) -> int:
        count = getattr(target, "star_count", None)
        return target.stars.count() if count is None else count

    def get_starred(self, target) -> bool:
        starred = getattr(target, "starred", None)
        if starred is None:
            request = self.context.get("request")
            return bool(request and services.is_starred(target, request.user))
        return starred

    def get_comments(self, target) -> int:
        count = getattr(target, "comment_count", None)
        return target.comments.count() if count is None else count


REVIEW_FIELDS = ["tags", "stars", "starred", "comments"]


class ReviewActions:
    """``comments/``, ``tags/`` and ``star/`` on a target viewset (Experiment or Sweep)."""

    @extend_schema(methods=["GET"], responses=CommentSerializer(many=True))
    @extend_schema(methods=["POST"], request=CommentWriteSerializer, responses={201: CommentSerializer})
    @action(detail=True, methods=["get", "post"])
    def comments(self, request, pk=None):
        """The comment thread, oldest first; any member may comment, read-only reviewers too."""
        target = self.get_object()
        if request.method == "GET":
            return Response(CommentSerializer(services.comments_on(target), many=True).data)
        payload = CommentWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        comment = services.add_comment(target, request.user, payload.validated_data["body"])
        return Response(CommentSerializer(comment).data, status=201)

    @extend_schema(methods=["GET"], responses=TagsSerializer)
    @extend_schema(methods=["PUT"], request=TagsSerializer, responses=TagsSerializer)
    @action(detail=True, methods=["get", "put"])
    def tags(self, request, pk=None):
        """The tags; PUT replaces the whole set (members who may write)."""
        target = self.get_object()
        if request.method == "GET":
            return Response({"tags": services.tag_names(target)})
        require_write(target.team, request.user)  # before the body: a 403 says more than a 400
        payload = TagsSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return Response({"tags": services.set_tags(target, request.user, payload.validated_data["tags"])})

    @extend_schema(methods=["PUT", "DELETE"], request=None, responses=StarSerializer)
    @action(detail=True, methods=["put", "delete"])
    def star(self, request, pk=None):
        """Star it (PUT) or take your star back (DELETE); both are idempotent."""
        target = self.get_object()
        starred = request.method == "PUT"
        return Response({"starred": starred, "stars": services.set_star(target, request.user, starred)})


class CommentViewSet(mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """One comment: anyone who sees its target reads it; its author edits (PATCH) or deletes it."""

    serializer_class = CommentSerializer
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return services.visible_comments(self.request.user)

    @extend_schema(request=CommentWriteSerializer, responses=CommentSerializer)
    def partial_update(self, request, *args, **kwargs):
        comment = self.get_object()
        services.require_author(comment, request.user)  # before the body: a 403 says more than a 400
        payload = CommentWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        edited = services.edit_comment(comment, request.user, payload.validated_data["body"])
        return Response(CommentSerializer(edited).data)

    def perform_destroy(self, instance):
        services.delete_comment(instance, self.request.user)
