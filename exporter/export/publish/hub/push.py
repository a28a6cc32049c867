"""Publish a built export: one commit per dataset repo, then the Collection that groups them.

Order per repo: read its state → create it if missing (private unless --public) → plan → one
`create_commit` with `parent_commit` = the head we planned against, so a card added or a run
pushed by someone else in between makes the commit fail (412) and the repo step re-plans instead
of overwriting. Each repo step is safe to repeat, which is what makes retries and re-runs after an
interrupted push land every run exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import httpx2
from huggingface_hub import HfApi, get_token
from huggingface_hub.hf_api import Collection
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from exporter.core.errors import AbortExport, UserError
from exporter.export.bundles import CARD_FILE, BuiltExport, RepoBundle
from exporter.export.publish.destination import INDEX_PATH, RemoteRepo, read_remote, unknown_remote
from exporter.export.publish.hub.plan import UPDATED_NOTE, RepoPlan, plan_repo
from exporter.export.publish.hub.retry import Backoff, explain_failure, with_retries
from exporter.shared.hub_client import LOGIN_HINT

HUB_FAILURES = (OSError, httpx2.TransportError)  # HfHubHTTPError is an OSError
DEFAULT_BACKOFF = Backoff()


@dataclass
class RepoOutcome:
    plan: RepoPlan
    url: str
    created: bool
    commit_url: str | None = None

    @property
    def repo_id(self) -> str:
        return self.plan.repo_id


@dataclass
class PushSummary:
    dry_run: bool
    repos: list[RepoOutcome] = field(default_factory=list)
    collection_url: str | None = None
    collection_created: bool = False
    collection_items_added: list[str] = field(default_factory=list)

    def destinations(self) -> dict[str, str]:
        """Repo name → URL, for the export summary table."""
        prefix = "(dry run) " if self.dry_run else ""
        return {outcome.plan.bundle.name: prefix + outcome.url for outcome in self.repos}


def publish_to_hub(
    built: BuiltExport,
    *,
    api: HfApi,
    public: bool = False,
    replace: bool = False,
    dry_run: bool = False,
    console: Console,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> PushSummary:
    """Push every bundle of `built` to `built.owner` and group them in the Collection `built.base`.

    `dry_run` prints every operation and writes nothing. It does read the Hub when a token is
    available (repo state, index, collection) so the listing says exactly what would be skipped,
    replaced or created; without a token it plans against empty repos and says so. A real push
    without a token is a `UserError` before any request.
    Hub failures end in `AbortExport` with one line: what failed and what was already published.
    """
    return _Publisher(
        built, api, public=public, replace=replace, dry_run=dry_run, console=console, backoff=backoff
    ).run()


class _Publisher:
    def __init__(
        self,
        built: BuiltExport,
        api: HfApi,
        *,
        public: bool,
        replace: bool,
        dry_run: bool,
        console: Console,
        backoff: Backoff,
    ):
        self.built, self.api, self.console, self.backoff = built, api, console, backoff
        self.public, self.replace, self.dry_run = public, replace, dry_run
        # HfApi(token=None) sends the token huggingface_hub resolves itself; False sends none.
        self.can_read = bool(api.token if api.token is not None else get_token())
        if not self.can_read and not dry_run:
            raise UserError(f"no Hugging Face token found; {LOGIN_HINT}")
        self.summary = PushSummary(dry_run=dry_run)
        self.created: set[str] = set()
        self.endpoint = api.endpoint.rstrip("/")

    # -- orchestration -----------------------------------------------------------------------------

    def run(self) -> PushSummary:
        if self.dry_run and not self.can_read:
            self.say("dry run without a Hub token: remote state not read, planning as if every repo were new")
        step = ""
        try:
            with self._progress() as progress:
                for bundle in self.built.bundles:
                    step = f"pushing {bundle.repo_id(self.built.owner)}"
                    task = progress.add_task(escape(bundle.repo_id(self.built.owner)), total=None)
                    self.summary.repos.append(
                        self._retrying(step, partial(self._push_repo, bundle, progress, task))
                    )
            step = f"updating the collection {self.built.base!r} of {self.built.owner}"
            self._retrying(step, self._ensure_collection)
        except HUB_FAILURES as error:
            raise AbortExport(
                f"{explain_failure(error, what=step, endpoint=self.endpoint)}; {self._published()}"
            ) from error
        return self.summary

    def _retrying[T](self, what: str, action: Callable[[], T]) -> T:
        return with_retries(action, backoff=self.backoff, what=what, note=self.warn)

    def _progress(self) -> Progress:
        return Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=self.console,
            disable=self.dry_run,
        )

    # -- one repo ----------------------------------------------------------------------------------

    def _read(self, repo_id: str) -> RemoteRepo:
        return read_remote(self.api, repo_id, warn=self.warn) if self.can_read else unknown_remote(repo_id)

    def _push_repo(self, bundle: RepoBundle, progress: Progress, task: TaskID) -> RepoOutcome:
        repo_id = bundle.repo_id(self.built.owner)
        remote = self._read(repo_id)
        if not remote.exists and not self.dry_run:
            self.api.create_repo(repo_id, repo_type="dataset", private=not self.public, exist_ok=True)
            self.created.add(repo_id)
            remote = self._read(repo_id)
        plan = plan_repo(
            bundle,
            owner=self.built.owner,
            remote=remote,
            replace=self.replace,
            snapshots=self.built.snapshots,
            scans=self.built.card_scans,
            scan_section=self.built.scan_section,
            license_id=self.built.license,
        )
        outcome = RepoOutcome(plan, f"{self.endpoint}/datasets/{repo_id}", created=repo_id in self.created)
        for run in plan.skipped_runs:
            self.say(f"{repo_id}: run {run} is already in the repo; skipped (use --replace to overwrite it)")
        for run in plan.updated_runs:
            self.say(f"{repo_id}: {UPDATED_NOTE.format(run=run)}")
        if self.dry_run:
            self._print_plan(plan)
            return outcome
        if self.public and remote.private and not outcome.created:
            self.say(f"{repo_id} exists and is private; visibility kept (change it in the repo settings)")
        if not plan.has_changes:
            progress.remove_task(task)  # nothing to upload; the closing lines say "up to date"
            return outcome
        size = plan.upload_bytes()
        progress.update(
            task, description=f"{escape(repo_id)}: uploading {len(plan.uploads)} files", total=size
        )
        commit = self.api.create_commit(
            repo_id,
            plan.operations(),
            commit_message=plan.commit_message(),
            commit_description=plan.commit_description(),
            repo_type="dataset",
            parent_commit=remote.sha,
        )
        progress.update(task, description=f"{escape(repo_id)}: committed", completed=size)
        outcome.commit_url = commit.commit_url
        return outcome

    def _print_plan(self, plan: RepoPlan) -> None:
        remote = plan.remote
        visibility = "public" if self.public else "private"
        if not remote.known:
            self.dry(f"create dataset repo {plan.repo_id} ({visibility}) if it does not exist")
        elif plan.create:
            self.dry(f"create dataset repo {plan.repo_id} ({visibility})")
        else:
            kept = "public" if remote.private is False else "private"
            self.dry(f"use existing dataset repo {plan.repo_id} ({kept}, visibility kept)")
        for path in plan.deletes:
            self.dry(f"  delete {path} (replaced run)")
        for run in plan.updated_runs:
            self.dry(f"  replace run {run}: its earlier export was partial (still recording)")
        for file in plan.uploads:
            size = plan.bundle.local_path(file).stat().st_size
            self.dry(f"  add {file.path} ({size:,} bytes, run {file.run_id})")
        for run in plan.present_runs:
            self.dry(f"  keep run {run}: already published with these files")
        if plan.write_card and remote.has_card:
            self.dry(f"  update {CARD_FILE} (its generated statistics; the rest of the card is kept)")
        elif plan.write_card:
            self.dry(f"  add {CARD_FILE} (dataset card)")
        else:
            self.dry(f"  keep {CARD_FILE} (up to date)")
        if plan.has_changes:
            self.dry(f"  update {INDEX_PATH} (run index)")
            self.dry(f"  commit: {plan.commit_message()}")
        else:
            self.dry("  nothing to commit")

    # -- the collection ----------------------------------------------------------------------------

    def _find_collection(self) -> Collection | None:
        """The owner's collection titled exactly BASE. Listing pages through all of the owner's
        collections (a 20-result text search can miss it); listings truncate items, so re-read it."""
        for listed in self.api.list_collections(owner=self.built.owner):
            if listed.title == self.built.base:
                return self.api.get_collection(listed.slug)
        return None

    def _ensure_collection(self) -> None:
        owner, title = self.built.owner, self.built.base
        wanted = [bundle.repo_id(owner) for bundle in self.built.bundles]
        collection = self._find_collection() if self.can_read else None
        if collection is None and not self.dry_run:
            collection = self.api.create_collection(
                title,
                namespace=owner,
                description=f"agentcap export {owner}/{title}: LLM calls + agent traces (join on run_id)",
                private=not self.public,
                exists_ok=True,  # created meanwhile (or unlisted): reuse it, never a second one
            )
            self.summary.collection_created = True
        present = (
            {item.item_id for item in collection.items if item.item_type == "dataset"}
            if collection
            else set()
        )
        missing = [repo_id for repo_id in wanted if repo_id not in present]
        if self.dry_run:
            where = (
                f"use collection {collection.slug}"
                if collection
                else f"create collection {title!r} under {owner}"
            )
            self.dry(where if collection or self.can_read else f"find or {where}")
            for repo_id in missing:
                self.dry(f"  add item dataset {repo_id}")
            if collection and not missing:
                self.dry("  all items already there")
            return
        assert collection is not None
        for repo_id in missing:
            collection = self.api.add_collection_item(collection.slug, repo_id, "dataset", exists_ok=True)
            self.summary.collection_items_added.append(repo_id)
        self.summary.collection_url = collection.url

    # -- output ------------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        self.console.print(f"note: {escape(message)}", soft_wrap=True)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)

    def dry(self, message: str) -> None:
        self.console.print(f"[dim]dry-run:[/] {escape(message)}", highlight=False, soft_wrap=True)

    def _published(self) -> str:
        done = [outcome.repo_id for outcome in self.summary.repos]
        if not done:
            return "nothing was published"
        return "already published: " + ", ".join(done) + " (re-running skips them)"


def print_push_result(console: Console, summary: PushSummary) -> None:
    """The closing lines of a push: every repo URL, then the Collection URL."""
    if summary.dry_run:
        console.print("dry run: nothing was created, uploaded or changed on the Hub", highlight=False)
        return
    for outcome in summary.repos:
        console.print(f"{outcome.url}  {_describe(outcome)}", highlight=False, soft_wrap=True)
    if summary.collection_url:
        created = (
            "created"
            if summary.collection_created
            else "updated"
            if summary.collection_items_added
            else "unchanged"
        )
        console.print(f"{summary.collection_url}  (collection, {created})", highlight=False, soft_wrap=True)


def _describe(outcome: RepoOutcome) -> str:
    plan = outcome.plan
    parts = ["created" if outcome.created else "updated" if plan.has_changes else "up to date"]
    if plan.added_runs:
        parts.append(f"{len(plan.added_runs)} run(s) added")
    if plan.replaced_runs:
        parts.append(f"{len(plan.replaced_runs)} replaced")
    if plan.updated_runs:
        parts.append(f"{len(plan.updated_runs)} partial run(s) completed")
    if plan.skipped_runs:
        parts.append(f"{len(plan.skipped_runs)} skipped (already there)")
    if plan.write_card:
        parts.append("card updated" if plan.remote.has_card else "card written")
    return "(" + ", ".join(parts) + ")"
