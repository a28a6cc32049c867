"""`agentcap stats`: command.py → sources.py; the totals themselves are shared/totals.py (docs/stats.md)."""
