"""The README's configuration table names every setting config.Settings reads, with its default,
so a user never has to read config.py to learn a knob exists."""

import re

from config import BASE_DIR, Settings


def _documented_settings() -> set[str]:
    text = (BASE_DIR / "README.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    names: set[str] = set()
    for row in rows:
        first_cell = row.split("|")[1]
        names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def test_every_setting_is_in_the_readmes_configuration_table() -> None:
    missing = sorted(set(Settings.model_fields) - _documented_settings())
    assert missing == []


def test_the_table_names_no_setting_that_does_not_exist() -> None:
    unknown = sorted(_documented_settings() - set(Settings.model_fields))
    assert unknown == []
