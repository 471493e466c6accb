from django import forms
from django.conf import settings

from webapp.datasets.models import MAX_DESCRIPTION_LENGTH
from webapp.teams.access import writable_teams_of


class DatasetUploadForm(forms.Form):
    name = forms.CharField(max_length=100)
    team = forms.ModelChoiceField(queryset=None, empty_label=None)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False,
                                  max_length=MAX_DESCRIPTION_LENGTH)
    archive = forms.FileField(
        label="Zip file",
        help_text="images/ and masks/ with the same file names (an image without a mask is unlabelled), "
        "optional classes.json with class names and colours.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = writable_teams_of(user)

    def clean_archive(self):
        archive = self.cleaned_data["archive"]
        if archive.size > settings.SEGLAB_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"The file is {archive.size} bytes; the limit is {settings.SEGLAB_MAX_UPLOAD_BYTES}.")
        if not archive.name.lower().endswith(".zip"):
            raise forms.ValidationError("Upload a .zip file holding images/ and masks/.")
        return archive
