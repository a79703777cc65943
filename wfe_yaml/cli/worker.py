"""`wfe worker`: a Celery worker that runs the steps `wfe run --broker` sends to its queues."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import click

from wfe_yaml.cli.common import fail


@click.command("worker")
@click.option(
    "--broker",
    envvar="WFE_BROKER",
    required=True,
    metavar="URL",
    help="Redis URL of the broker, e.g. redis://host:6379/0 [env WFE_BROKER].",
)
@click.option(
    "-Q",
    "--queues",
    default="default",
    show_default=True,
    metavar="LABELS",
    help="Comma-separated `runs_on` labels this worker takes steps for.",
)
@click.option(
    "-c", "--concurrency", type=click.IntRange(min=1), help="Steps running at once [CPUs]."
)
@click.option(
    "--workdir",
    type=click.Path(exists=True, file_okay=False),
    default=".",
    help="The workspace steps run in: where the project's code is here [current directory].",
)
@click.option("-n", "--name", help="Worker name, as `wfe workers` shows it [wfe-PID@HOST].")
@click.option(
    "-l",
    "--loglevel",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="How much the worker logs (steps received and how they ended, at INFO).",
)
def command(
    broker: str,
    queues: str,
    concurrency: int | None,
    workdir: str,
    name: str | None,
    loglevel: str,
) -> None:
    """Run steps sent to QUEUES until stopped (Ctrl-C finishes the running steps first).

    The code the steps work on must be at --workdir: a shared path, or a checkout step.
    """
    from executors.remote import check_broker, worker_app
    from wfe_yaml.errors import ConfigError

    labels = [label.strip() for label in queues.split(",") if label.strip()]
    try:
        if not labels:
            raise ConfigError("--queues names no queue", hint="e.g. --queues linux,docker")
        check_broker(broker)
    except ConfigError as error:
        fail(error)
    app = worker_app(broker, Path(workdir).resolve())
    worker = app.Worker(
        hostname=name or f"wfe-{os.getpid()}@{socket.gethostname()}",
        queues=labels,
        concurrency=concurrency or os.cpu_count() or 2,
        loglevel=loglevel.upper(),
        # Our steps send their own heartbeats; Celery's start-up chatter only slows us.
        without_mingle=True,
        without_gossip=True,
        without_heartbeat=True,
    )
    worker.start()
    sys.exit(worker.exitcode)
