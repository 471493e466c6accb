"""The reconciler: PostgreSQL is the truth, the broker is only a doorbell.

Each pass (``python manage.py reconcile`` runs one every ``SEGLAB_RECONCILE_SECONDS``):

* a running run whose heartbeat is older than ``SEGLAB_HEARTBEAT_TIMEOUT`` lost its
  worker (killed, host gone): it is handed to ``lifecycle.crash``, which re-queues it to
  resume from its last checkpoint while restarts are left;
* a running cross-dataset evaluation whose heartbeat is as old fails with the reason
  (``webapp.transfer.lifecycle.fail_stale``: it is asked again, nothing to resume);
* a queue with queued runs or evaluations and no message waiting in the broker (Redis restarted empty,
  a message lost) gets one. A message too many is harmless: a worker that finds no
  queued run to claim returns at once.

With Redis a message held by a dead worker comes back only after the visibility timeout
(one hour by default, celery#7651); the heartbeat makes the run's recovery independent
of it.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import ChannelError, OperationalError

from webapp.celery import app as celery_app
from webapp.experiments import lifecycle
from webapp.experiments.models import Experiment
from webapp.transfer import lifecycle as transfer_lifecycle

logger = logging.getLogger(__name__)


def waiting_messages(queue: str) -> int:
    """Messages waiting in the broker for ``queue`` (not those a worker holds)."""
    with celery_app.connection_for_write() as connection:
        try:
            return connection.default_channel.queue_declare(queue=queue, passive=True).message_count
        except ChannelError:  # the queue's key is gone: nothing waits
            return 0


def reconcile() -> dict[str, list]:
    """One pass; returns what it did, for the command's log and the tests."""
    stale_before = timezone.now() - timedelta(seconds=settings.SEGLAB_HEARTBEAT_TIMEOUT)
    stale = Experiment.objects.filter(Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True),
                                      status=Experiment.Status.RUNNING)
    requeued = []
    for experiment in stale:
        reason = (f"its worker {experiment.worker or '?'} stopped sending heartbeats at step {experiment.current_step}"
                  f" (last {experiment.heartbeat_at:%H:%M:%S} UTC)" if experiment.heartbeat_at else
                  f"its worker {experiment.worker or '?'} never sent a heartbeat")
        if lifecycle.crash(experiment.pk, experiment.attempt, reason) is not None:
            requeued.append(experiment.pk)
    failed_evaluations = transfer_lifecycle.fail_stale()
    return {"requeued": requeued, "announced": announce_waiting_work(), "failed_evaluations": failed_evaluations}


def announce_waiting_work() -> list[str]:
    """Send a message for each queue that holds queued runs or evaluations but no message; returns those queues.

    Also called by a worker as it starts (``workers.tasks``): the message that announced a run
    may be held by a worker that shut down meanwhile, and Redis gives it back only after the
    visibility timeout.
    """
    announced = []
    queues = Experiment.objects.filter(status=Experiment.Status.QUEUED).values_list("queue", flat=True).distinct()
    for queue in sorted(set(queues) | transfer_lifecycle.queued_queues()):
        try:
            if waiting_messages(queue) == 0:
                lifecycle.announce(queue)
                announced.append(queue)
        except OperationalError as error:
            logger.warning("the broker is unreachable (%s); queue %s is announced on a later pass", error, queue)
    return announced
