"""Reading configuration files: YAML/JSON documents and ``.env``; where the built-in ones live."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[2]
"""The checkout: ``providers.yaml``, ``pricing.yaml`` and ``templates/`` sit at its top
level (the design card), beside the package; an editable install (``pip install -e .``)
keeps them there."""
BUILTIN_PROVIDERS = PROJECT_DIR / "providers.yaml"
BUILTIN_PRICING = PROJECT_DIR / "pricing.yaml"
TEMPLATES = PROJECT_DIR / "templates"


class ConfigError(ValueError):
    """A configuration problem, its message naming the file and key."""


def read_structured_file(path: str | Path) -> Any:
    """YAML (a superset of JSON) or JSON file contents; ConfigError naming the file."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    import yaml  # here, not at the top: the commands that read no YAML start faster

    try:
        if p.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"{p}: not valid YAML/JSON: {exc}") from exc


def read_dotenv(path: str | Path = ".env") -> dict[str, str]:
    """``KEY=value`` lines of a ``.env`` file (``export``, quotes and comments allowed)."""
    p = Path(path)
    if not p.is_file():
        return {}
    values: dict[str, str] = {}
    for raw in p.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        values[key.strip()] = value
    return values


def env_default(name: str, default: str, dotenv: Mapping[str, str]) -> str:
    """The environment wins over ``.env``, which wins over the built-in default."""
    return os.environ.get(name) or dotenv.get(name) or default
