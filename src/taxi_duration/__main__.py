"""`python -m taxi_duration` is the `taxi-duration` command."""

from taxi_duration.cli.main import main

main()
