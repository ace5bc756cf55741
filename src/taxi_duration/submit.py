"""The file `spark-submit` runs: the `taxi-duration` command itself, in the driver spark-submit started.

    spark-submit --master yarn --py-files taxi_duration.zip path/to/taxi_duration/submit.py \\
        validate --engine spark s3a://bucket/trips/ --out s3a://bucket/validated

Every argument after the file is the command line of `taxi-duration`; spark-submit's `--master` and `--conf`
settings are kept (`spark.get_spark` adds its defaults only where spark-submit gave none). `python -m
taxi_duration.submit --path` prints this file's path, to hand to spark-submit (see docs/cluster-submit.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Run the `taxi-duration` command line (the same app as the installed command)."""
    if sys.argv[1:] == ["--path"]:
        print(Path(__file__).resolve())
        return
    from taxi_duration.cli.main import main as cli_main

    cli_main()


if __name__ == "__main__":
    # Run as a file (spark-submit's way), Python puts this file's folder, the package's own, first on the
    # path, where its modules (config, schema, spark, ...) would shadow any other module of those names.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    main()
