"""Publishing an export to the Hugging Face Hub (`agentcap-export … --push OWNER/BASE`).

Stages: `target` (the --push value, token and endpoint) → `remote` (what each repo holds) →
`plan` (what one export changes in one repo) → `publish` (commits, collection, output), with
`retry` for transient failures and one-line error messages.
"""

from exporter.export.publish.hub.push import PushSummary, RepoOutcome, print_push_result, publish_to_hub
from exporter.export.publish.hub.retry import Backoff
from exporter.shared.hub_client import HubPush, PushTarget, connect_hub, parse_push_target

__all__ = [
    "Backoff",
    "HubPush",
    "PushSummary",
    "PushTarget",
    "RepoOutcome",
    "connect_hub",
    "parse_push_target",
    "print_push_result",
    "publish_to_hub",
]
