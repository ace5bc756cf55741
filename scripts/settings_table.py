"""README's settings table, made from the settings model (`core/config.py`), so the two cannot disagree.

python scripts/settings_table.py          # rewrite the table between README's settings markers
python scripts/settings_table.py --check  # exit 1 when README's table is not the model's (the tests run it)
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic_core import PydanticUndefined

from taxi_duration.core.config import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- settings table: made by scripts/settings_table.py -->", "<!-- end of settings table -->"


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    if field.default is None or field.default is PydanticUndefined:
        return ""
    value = getattr(field.default, "value", field.default)
    return f"`{value}`"


def table() -> str:
    """The settings as a Markdown table: name, environment variable, default, what it sets."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = ["| setting | environment | default | what it sets |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{name}` | `{prefix}{name.upper()}` | {_default(name)} | {description} |")
    return "\n".join(rows)


def main() -> int:
    """Rewrite README's table, or with `--check` say whether it is current."""
    text = README.read_text()
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        print(f"README.md has no settings markers ({START} ... {END})", file=sys.stderr)
        return 1
    current = f"{head}{START}\n{table()}\n{END}{tail}"
    if sys.argv[1:] == ["--check"]:
        if current != text:
            print("README.md: the settings table is stale: run python scripts/settings_table.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(current)
    return 0


if __name__ == "__main__":
    sys.exit(main())
