"""NeMo Guardrails' server hook for this configs folder (``nemoguardrails server --config rails_configs``).

NeMo's server runs this file at start-up and calls ``init(app)``. eco-rails' hook makes OpenAI-style answers
report ``finish_reason: "length"`` when ``max_tokens`` cut them (NeMo's server alone always says "stop").
Copy this file to the root of your own configs folder to get the same.
"""

import os

os.environ.setdefault("NEMO_GUARDRAILS_NO_USAGE_STATS", "1")

from eco_rails.rails.server import init  # noqa: E402,F401
