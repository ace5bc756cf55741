"""The one place a Spark session is built, with defaults tuned for this project's jobs.

Local mode on a laptop and a real cluster use the same builder; only the master URL changes. On a cluster
submitted with `spark-submit`, an existing session is reused and none of these defaults override it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from taxi_duration.core.atomic import remove_leftovers, run_tag
from taxi_duration.core.errors import EngineUnavailableError

if TYPE_CHECKING:
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    from taxi_duration.core.config import Settings

SUPPORTED_JAVA = (17, 21)

JAVA_HELP = (
    "Spark 4 needs Java 17 or 21. On Debian/Ubuntu: `sudo apt-get install -y openjdk-17-jre-headless`; "
    "on macOS: `brew install openjdk@17`; or set JAVA_HOME to an existing JDK 17/21. "
    "The embedded engine (--engine duckdb, the default) needs no Java."
)


def java_version() -> int | None:
    """The major version of the `java` that Spark would start (JAVA_HOME first, then PATH), or None."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    major = int(m[1])
    return int(m[2]) if major == 1 and m[2] else major  # "1.8" means Java 8


def check_java() -> None:
    """Raise a clear error when no Java that Spark 4 can run on is installed."""
    version = java_version()
    if version not in SUPPORTED_JAVA:
        found = "no Java was found" if version is None else f"found Java {version}"
        raise EngineUnavailableError(f"{found}. {JAVA_HELP}")


# Why each default: 2-8 cores on one machine want few shuffle partitions (200 makes tiny tasks); AQE then
# coalesces further. UTC session time zone so timestamps without a zone are never shifted. Arrow makes
# toPandas/createDataFrame columnar. PySpark 4 records the Python call site of every column function it
# builds, for its error messages, at several JVM round trips each: half the round trips, and a third of the
# driver's time, in planning a small training's queries; our errors name their step themselves.
LOCAL_DEFAULTS: dict[str, str] = {
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.parquet.compression.codec": "zstd",
    "spark.ui.showConsoleProgress": "false",
    "spark.ui.enabled": "false",
    "spark.python.sql.dataFrameDebugging.enabled": "false",
}
# On a cluster, 8 shuffle partitions would cap a job at 8 busy cores and, at a billion trips, make each
# partition gigabytes (docs/scaling.md): there Spark's own 200 stand, and AQE coalesces what is too small.
LOCAL_ONLY = ("spark.sql.shuffle.partitions",)


def defaults_for(master: str) -> dict[str, str]:
    """The project's Spark settings for a session on `master` (local mode, or any cluster)."""
    if master.startswith("local"):
        return dict(LOCAL_DEFAULTS)
    return {key: value for key, value in LOCAL_DEFAULTS.items() if key not in LOCAL_ONLY}


# The archive of this package that executors import it from when they are other machines' processes.
PACKAGE_ARCHIVE = "taxi_duration.zip"
PYFILES_PREFIX = "taxi-duration-pyfiles-"  # its temporary folder: the prefix, then the driver's run tag
LOOPBACK = ("127.0.0.1", "localhost")
CONNECT_TIMEOUT_S = 5.0  # for a master's port and its UI


def submitted_settings() -> dict[str, str]:
    """The settings spark-submit already gave this process's JVM (`--master`, `--conf`, `--name`, ...): none
    when the process was not started by spark-submit (which hands it a running JVM's gateway port)."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return {}
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connects to spark-submit's JVM: only then does SparkConf read its settings
    return dict(SparkConf().getAll())


def get_spark(
    master: str = "local[*]",
    driver_memory: str = "4g",
    app_name: str = "taxi-duration",
    executor_wait_s: float = 60.0,
    log: Path | None = None,
) -> SparkSession:
    """Return the active Spark session, or start one on `master` with the project's defaults; under
    spark-submit, its master and every setting it was given win over these.

    On a cluster this tool starts the session for, executors get this package shipped (`ship_package`;
    spark-submit ships what its `--py-files` name); on a `spark://` master the session fails within a bounded
    time, with one clear error, when nothing listens there or no executor registers within `executor_wait_s`.
    With `log`, the JVM this starts writes its console (log4j, the JVM's own warnings, the Python workers it
    forks) to that file, not to the user's screen.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise EngineUnavailableError(
            "the spark engine needs pyspark: pip install 'taxi-duration-predictor[spark]'"
        ) from exc
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    check_java()
    given = submitted_settings()
    ours_master = "spark.master" not in given
    if ours_master and master.startswith("spark://"):
        check_master(master)
    ours = {
        "spark.master": master,
        "spark.app.name": app_name,
        "spark.driver.memory": driver_memory,
        **defaults_for(given.get("spark.master", master)),
    }
    builder = SparkSession.builder
    for key, value in ours.items():
        if key not in given:
            builder = builder.config(key, value)
    if ours_master and on_this_machine(master):
        # A local driver, or one of a cluster on loopback (`taxi-duration cluster up`), talks only to this
        # machine: loopback avoids hostname look-ups and firewall prompts.
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        # Python workers (pandas UDFs, XGBoost's trainer) must run this interpreter, with this environment's
        # packages, not whatever `python3` is first on the PATH; PySpark reads the variable when it starts.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        with jvm_console_to(log) if log is not None and ours_master else contextlib.nullcontext():
            spark = builder.getOrCreate()
    except Exception as exc:  # PySpark raises several types when the JVM does not start
        where = f"; its log: {log}" if log is not None else ""
        raise EngineUnavailableError(f"Spark did not start: {str(exc).strip().splitlines()[0]}{where}") from exc
    spark.sparkContext.setLogLevel("ERROR")
    running_on = spark.sparkContext.master or ""
    if not given and not running_on.startswith("local"):
        ship_package(spark)
    if running_on.startswith("spark://"):
        wait_for_executors(spark, executor_wait_s)
    return spark


def task_slots(context: SparkContext) -> int:
    """How many tasks the session's executors run at once: Spark's own count, the one a barrier stage (XGBoost's
    fit) must fit in. `defaultParallelism` is not it: it says 2 on a cluster of one core."""
    jvm = context._jsc.sc()
    return max(1, int(jvm.maxNumConcurrentTasks(jvm.resourceProfileManager().defaultResourceProfile())))


def session_for(settings: Settings) -> SparkSession:
    """The session a command's settings ask for: their master, driver memory and executor wait; the JVM's
    console in `DATA_DIR/logs/spark-<time>-<pid>.log`."""
    log = settings.data_dir / "logs" / f"spark-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    return get_spark(
        settings.spark_master,
        settings.spark_driver_memory,
        executor_wait_s=settings.spark_executor_wait_seconds,
        log=log,
    )


@contextlib.contextmanager
def jvm_console_to(log: Path) -> Iterator[None]:
    """Point this process's standard error at `log` while a JVM starts inside the block: the JVM keeps it as
    its own for life (its warnings are nothing a user can act on; our errors say what went wrong), and this
    process's standard error is back when the block ends."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with log.open("ab") as fh:
            os.dup2(fh.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def on_this_machine(master: str) -> bool:
    """Whether `master` runs its executors on this machine: local mode, or a standalone master on loopback."""
    if master.startswith("local"):
        return True
    hosts = [address.rpartition(":")[0] for address in master.removeprefix("spark://").split(",")]
    return master.startswith("spark://") and all(host in LOOPBACK for host in hosts)


def ship_package(spark: SparkSession) -> Path:
    """Add this package (the code this driver runs, `package_archive`) to the session's Python files, so
    executors import `taxi_duration` from it rather than from whatever their machine has installed (if
    anything); returns the archive's path."""
    archive = package_archive()
    spark.sparkContext.addPyFile(str(archive))
    return archive


def package_archive() -> Path:
    """Zip this package into a temporary folder removed at exit, or by the next driver when this one is killed
    (the folder is named for its run, and every call removes the folders of runs that are gone)."""
    import taxi_duration

    source = Path(taxi_duration.__file__).parent
    remove_leftovers(Path(tempfile.gettempdir()), PYFILES_PREFIX)
    folder = Path(tempfile.mkdtemp(prefix=f"{PYFILES_PREFIX}{run_tag()}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    archive = folder / PACKAGE_ARCHIVE
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(source.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zipped.write(path, path.relative_to(source.parent))
    return archive


# What a session checks before it relies on a `spark://` master.


def check_master(master: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise unless something accepts connections at one of the master URL's host:port pairs (HA URLs name
    several: spark://a:7077,b:7077)."""
    addresses = master.removeprefix("spark://").split(",")
    for address in addresses:
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return
        except (OSError, ValueError):
            continue
    raise EngineUnavailableError(
        f"no Spark master at {master}: nothing accepts connections there "
        "(for a local one: `taxi-duration cluster up`, then `taxi-duration cluster status`)"
    )


def wait_for_executors(spark: SparkSession, timeout_s: float) -> None:
    """Return when the session has an executor; raise (stopping the session) after `timeout_s` without one.

    A standalone master that has no alive worker, or none with the cores and memory an executor asks for,
    accepts the application and never gives it an executor; Spark would wait forever.
    """
    context = spark.sparkContext
    if context.getConf().get("spark.dynamicAllocation.enabled", "false") == "true":
        return  # executors are asked for only once tasks wait
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if context._jsc.sc().getExecutorMemoryStatus().size() > 1:  # the driver counts as one
            return
        time.sleep(0.2)
    master = context.master
    executor = f"{context.getConf().get('spark.executor.memory', '1g')} of memory"
    cores = context.getConf().get("spark.executor.cores")
    spark.stop()
    raise EngineUnavailableError(
        f"no executor started on {master} within {timeout_s:.0f} s: it has no alive worker with "
        f"{f'{cores} core(s) and ' if cores else ''}{executor} free (see its UI or `taxi-duration cluster status`)"
    )
