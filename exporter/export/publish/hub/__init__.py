"""Publishing an export to the Hugging Face Hub (`agentcap-export … --push OWNER/BASE`).

Steps: what each repo holds (`exporter.export.publish.destination`) → `plan` (what one export
changes in one repo) → `push` (commits, collection, output), with `retry` for transient failures
and one-line error messages.
"""
