"""``python -m llm_usage <command>``: see ``llm_usage/commands``."""

from __future__ import annotations

import sys

from .commands import main

sys.exit(main())
