"""`agentcap export`: command.py → pipeline.py → build/ → gate/ → publish/ (docs/architecture.md)."""
