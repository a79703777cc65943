"""`wfe workers`: which workers answer on a broker, and the queues each one takes."""

from __future__ import annotations

import sys
from typing import Any

import click

from wfe_yaml.cli.common import fail


@click.command("workers")
@click.option(
    "--broker",
    envvar="WFE_BROKER",
    required=True,
    metavar="URL",
    help="Redis URL of the broker [env WFE_BROKER].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds to wait for workers to answer.",
)
def command(broker: str, timeout: float) -> None:
    """List the workers that answer within TIMEOUT, with their queues.

    Exit code 1 when none answers.
    """
    from executors.remote import celery_app, check_broker, shown_url
    from wfe_yaml.errors import ConfigError

    try:
        check_broker(broker)
    except ConfigError as error:
        fail(error)
    replies = celery_app(broker).control.inspect(timeout=timeout).active_queues() or {}
    if not replies:
        click.echo(f"no worker answered on {shown_url(broker)} within {timeout:g}s", err=True)
        sys.exit(1)
    click.echo(render_workers(replies))


def render_workers(replies: dict[str, list[dict[str, Any]]]) -> str:
    rows = [
        (worker, ", ".join(sorted(queue["name"] for queue in queues)))
        for worker, queues in sorted(replies.items())
    ]
    width = max(len("WORKER"), *(len(worker) for worker, _ in rows))
    lines = [f"{'WORKER':<{width}}  QUEUES"]
    lines.extend(f"{worker:<{width}}  {queues}" for worker, queues in rows)
    return "\n".join(lines)
