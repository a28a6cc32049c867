"""`agentcap ls` (command.py)."""
