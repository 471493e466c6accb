"""The experiment page's "Evaluate on another dataset" section (``experiments/_transfer_evaluations.html``)."""
from django import template

from webapp.transfer.services import target_datasets

register = template.Library()


@register.simple_tag
def transfer_targets(experiment):
    """The datasets the run may be evaluated on: the other datasets of its team."""
    return target_datasets(experiment).only("pk", "name")
