"""Airflow's ``core.hostname_callable`` for the production-configuration tests: the two Celery
workers run on one machine, so each is told its own name (``CREATIVE_WORKER_NAME``) and the
task instances it ran show it."""
from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("CREATIVE_WORKER_NAME") or socket.getfqdn()
