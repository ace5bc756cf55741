"""The `taxi-duration` command: thin Typer commands over the stages (`main` is the app), their shared options
(`common`) and what they print (`render`).
"""
