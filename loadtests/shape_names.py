"""The payout-day load shapes by name, importable without Locust.

Importing locust gevent-patches the importing process, so the CLI and `loadtests.run` offer
these names without it; loadtests/shapes.py refuses to load if its classes differ from them.
"""

from __future__ import annotations

from typing import Final

SHAPE_NAMES: Final = ("payout_morning", "spike", "step_ramp")
