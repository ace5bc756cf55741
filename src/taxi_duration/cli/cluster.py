"""`taxi-duration cluster up|status|down`: a Spark standalone cluster on this machine, a sub-app `cli/main.py` adds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from taxi_duration.cli.common import ConfigOpt, console, settings_from
from taxi_duration.core.errors import UsageError

cluster_app = typer.Typer(
    help="A Spark standalone cluster on this machine (loopback): a master and workers, each its own JVM.",
    no_args_is_help=True,
)


def _state_dir(config: Path | None) -> Path:
    """Where the cluster's pids, ports and logs live: under the data dir, so `status` and `down` find them."""
    return settings_from(config).data_dir.resolve() / "cluster"


@cluster_app.command("up")
def cluster_up(
    workers: Annotated[int, typer.Option(help="Worker JVMs.")] = 2,
    cores_per_worker: Annotated[int, typer.Option(help="Cores each worker offers executors.")] = 1,
    memory_per_worker: Annotated[str, typer.Option(help="Memory each worker offers executors: 512m, 2g.")] = "2g",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every worker to register.")] = 120.0,
    config: ConfigOpt = None,
) -> None:
    """Start a master and workers, wait until every worker has registered, print the master URL and its UI."""
    from taxi_duration.ops import cluster

    with console.status("starting the cluster") as status:
        started = cluster.up(_state_dir(config), workers, cores_per_worker, memory_per_worker, timeout, status.update)
    console.print(
        f"master {started.master_url} (UI {started.ui_url}): {workers} worker(s) x {cores_per_worker} core(s), "
        f"{memory_per_worker}; use it with --spark-master {started.master_url} "
        f"or TAXI_DURATION_SPARK_MASTER={started.master_url}; stop it with `taxi-duration cluster down`"
    )
    print(started.master_url)  # stdout: the one thing a script needs


@cluster_app.command("status")
def cluster_status(config: ConfigOpt = None) -> None:
    """Show the master URL, its UI and the alive workers; exit 2 when no cluster is up."""
    from taxi_duration.ops import cluster

    state_dir = _state_dir(config)
    running = cluster.status(state_dir)
    if running is None:
        raise UsageError(f"no cluster is up (state in {state_dir}): `taxi-duration cluster up` starts one")
    alive = cluster.alive_workers(running.ui_url)
    workers = ", ".join(f"{w['host']}:{w['port']} {w['cores']} core(s) {w['memory']} MB" for w in alive) or "none"
    console.print(
        f"master {running.master_url} (UI {running.ui_url}); {len(alive)} of {len(running.workers)} worker(s) "
        f"alive: {workers}; logs in {state_dir / 'logs'}"
    )
    print(running.master_url)


@cluster_app.command("down")
def cluster_down(config: ConfigOpt = None) -> None:
    """Stop the master, the workers and every executor under them."""
    from taxi_duration.ops import cluster

    stopped = cluster.down(_state_dir(config))
    console.print(f"stopped {stopped.master_url}" if stopped else "no cluster was up")
