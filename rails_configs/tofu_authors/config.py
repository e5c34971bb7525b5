"""Keep this config offline: no usage statistics. (The eco rail's own config.py registers the engine.)"""

import os

os.environ.setdefault("NEMO_GUARDRAILS_NO_USAGE_STATS", "1")
