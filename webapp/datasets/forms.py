from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

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
            raise forms.ValidationError(f"The file is {filesizeformat(archive.size)} ({archive.size} bytes); "
                                        f"the limit is {filesizeformat(settings.SEGLAB_MAX_UPLOAD_BYTES)} "
                                        f"({settings.SEGLAB_MAX_UPLOAD_BYTES} bytes).")
        if not archive.name.lower().endswith(".zip"):
            raise forms.ValidationError("Upload a .zip file holding images/ and masks/.")
        return archive


class ClassesForm(forms.Form):
    """Every class's name and display colour, one pair of fields per class (``name_<i>``, ``color_<i>``).

    The form only reads the values; the rules (unique names, no control characters,
    colour forms) are the engine's, applied by ``webapp.datasets.editing.update_dataset``.
    """

    def __init__(self, *args, classes: list[dict], **kwargs):
        super().__init__(*args, **kwargs)
        self.classes = classes
        for entry in classes:
            i = entry["index"]
            self.fields[f"name_{i}"] = forms.CharField(label=f"Name of class {i}", initial=entry["name"],
                                                       required=False, strip=False)
            self.fields[f"color_{i}"] = forms.CharField(label=f"Colour of class {i}", initial=entry["color"],
                                                        required=False,
                                                        widget=forms.TextInput(attrs={"type": "color"}))

    def rows(self):
        """(class, name field, colour field, problems of that class) for the template."""
        problems = getattr(self, "class_problems", {})
        return [(entry, self[f"name_{entry['index']}"], self[f"color_{entry['index']}"],
                 problems.get(entry["index"], [])) for entry in self.classes]

    def changes(self) -> list[dict]:
        """The classes whose name or colour the form changes, as ``update_dataset`` takes them."""
        changed = []
        for entry in self.classes:
            i = entry["index"]
            name, color = self.cleaned_data[f"name_{i}"], self.cleaned_data[f"color_{i}"]
            change = {"index": i}
            if name != entry["name"]:
                change["name"] = name
            if color.lower() != str(entry["color"]).lower():
                change["color"] = color
            if len(change) > 1:
                changed.append(change)
        return changed
