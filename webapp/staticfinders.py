"""Serves plotly.min.js from the installed plotly package, so pages never need a CDN."""
from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_DIR = Path(plotly.__file__).parent / "package_data"
PLOTLY_PREFIX = "vendor"


class PlotlyFinder(BaseFinder):
    def __init__(self, *args, **kwargs):
        self.storage = FileSystemStorage(location=str(PLOTLY_DIR))
        self.storage.prefix = PLOTLY_PREFIX

    def find(self, path, find_all=False, **kwargs):
        if path == f"{PLOTLY_PREFIX}/plotly.min.js":
            match = str(PLOTLY_DIR / "plotly.min.js")
            return [match] if find_all else match
        return []

    def list(self, ignore_patterns):
        yield "plotly.min.js", self.storage
