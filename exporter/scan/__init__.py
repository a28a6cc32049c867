"""Secret scan: run a scanner over what an export publishes, apply the policy, redact if asked.

Stages, one module each: `inputs` (which files), `trufflehog`/`kingfisher` behind `registry`
(run a scanner, parse its output into `findings.Finding`), `cache` (reuse by content hash),
`gate` (policy and the export stage), `report` (tables, scan-report.json, card text),
`redact` (rewrite the staged copies), `command` (`agentcap scan`).
"""
