"""What a monitoring centre loads to watch a switch: Prometheus alert and recording rules
(`rules.yml`) and a Grafana dashboard (`grafana-dashboard.json`), shipped with the package so
that an operator finds them beside the code whose metrics they read (docs/operations.md)."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules.yml"
DASHBOARD = HERE / "grafana-dashboard.json"
