"""`agentcap addon-path` (command.py)."""
