"""`agentcap run`: the proxy, the agent wired to it, tasks and turns, the key kept out of the agent's reach."""
