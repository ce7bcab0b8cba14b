"""``llm_usage_key_labels``: names for key fingerprints, so the stats say whose key paid.

A YAML (or JSON) mapping ``label: fingerprint``, for example::

    alice-laptop: key-3fa9c1d2
    ci: key-90b1e07f

A fingerprint comes from ``python -m llm_usage key-id`` (``accounting/keys.py``); the file
never holds a key.
"""

from __future__ import annotations

import re

from ..accounting.keys import KEY_ID
from .files import ConfigError, read_structured_file

LABEL = re.compile(r"[^\x00-\x1f\x7f]{1,64}")


def load_key_labels(path: str) -> dict[str, str]:
    """fingerprint -> label; ``{}`` without a file. ConfigError naming the file and key."""
    if not path:
        return {}
    data = read_structured_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of label: key fingerprint")
    labels: dict[str, str] = {}
    for label, key_id in data.items():
        where = f"{path}: {label!r}"
        if not isinstance(label, str) or not LABEL.fullmatch(label):
            raise ConfigError(f"{where}: a label is 1 to 64 characters without control characters")
        if not isinstance(key_id, str) or not KEY_ID.fullmatch(key_id):
            raise ConfigError(f"{where}: {key_id!r} is not a key fingerprint (key-3fa9c1d2: see llm_usage key-id)")
        if key_id in labels:
            raise ConfigError(f"{where}: {key_id} is already labelled {labels[key_id]!r}")
        labels[key_id] = label
    return labels
