from django.conf import settings
from django.db import models

from engine.sweeps import Grid
from webapp.datasets.models import Dataset
from webapp.teams.models import Team


class Sweep(models.Model):
    """A named group of runs launched together: every cell of a grid (``engine.sweeps``) on one dataset.

    Its runs are the experiments whose ``sweep`` is this row; ``grid`` is what was asked for,
    each run's effective config is on its experiment.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="sweeps")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="sweeps")
    name = models.CharField(max_length=200)
    grid = models.JSONField(help_text="methods, budgets, seeds, archs (empty: no architecture axis) and config, "
                                      "the base settings every run shares")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="one_sweep_name_per_team")]

    def __str__(self) -> str:
        return self.name

    @property
    def engine_grid(self) -> Grid:
        grid = self.grid
        return Grid(methods=grid["methods"], budgets=grid["budgets"], seeds=grid["seeds"],
                    archs=grid.get("archs") or (None,), base=grid.get("config") or {})
