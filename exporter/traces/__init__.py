"""`agentcap traces collect`: command.py → collect.py."""
