"""`agentcap report`: command.py → render.py | mask.py → charts.py | model.py (docs/report.md)."""
