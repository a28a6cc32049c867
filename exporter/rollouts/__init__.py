"""Rollouts: native agent traces and agentcap captures normalized into one conversation row shape.

build_manifest(sources, format)  → units (files, or sessions inside databases), nothing parsed
iter_rows(units, jobs=N)         → rows in unit order, parsed here or in N processes (arrow_schema.ROLLOUT_SCHEMA)
"""
