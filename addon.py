"""mitmproxy entry script: ``mitmdump -s addon.py --mode reverse:http://127.0.0.1:9``.

Kept tiny on purpose: mitmproxy reloads only this file on change, so all logic lives in
the ``llm_usage`` package (where the tests import it). The reverse URL is only
mitmproxy's required default upstream; every request is routed by its path.
"""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    from llm_usage.proxy.addon import make_addons
except ModuleNotFoundError as exc:  # mitmproxy alone is not enough: say what to install
    logging.getLogger("llm_usage").error(
        "llm-usage: missing Python package %r. Install the requirements into mitmproxy's Python: "
        "pip install -r %s (or use `make run`, which does it in .venv)",
        exc.name,
        Path(__file__).resolve().parent / "requirements.txt",
    )
    addons: list[object] = []
else:
    addons = make_addons()
