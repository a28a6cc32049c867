"""`agentcap sync`: runs dir → object storage (any fsspec URL), for fleets of capture proxies."""
