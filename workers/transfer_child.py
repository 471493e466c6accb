"""The process of one cross-dataset evaluation: ``python -m workers.transfer_child EVALUATION_ID ATTEMPT``.

A fresh process, as for a run (``workers.child``): CUDA is initialised only here, and it
dies with its worker (PR_SET_PDEATHSIG, set by the supervisor before exec).
"""
from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    evaluation_id, attempt = int(argv[0]), int(argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    import django

    django.setup()
    from webapp.transfer.models import TransferEvaluation
    from workers.transfer_runner import run_transfer

    evaluation = (TransferEvaluation.objects.select_related("experiment", "dataset")
                  .filter(pk=evaluation_id).first())
    if evaluation is None:
        return 0
    print(f"[seglab] transfer evaluation {evaluation_id}, attempt {attempt}, pid {os.getpid()}", flush=True)
    print(f"[seglab] {run_transfer(evaluation, attempt)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
