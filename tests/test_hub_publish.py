"""`publish_to_hub` driving the real HfApi against the loopback fake Hub (tests/fake_hub.py)."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import httpx2
import pyarrow.parquet as pq
import pytest
from factories import CANARY_KEY, make_record, write_run
from fake_hub import FakeHub
from huggingface_hub import HfApi
from rich.console import Console

from exporter.core.errors import AbortExport, UserError
from exporter.export.build.stage import build_export
from exporter.export.bundles import BuiltExport
from exporter.export.publish.destination import INDEX_PATH
from exporter.export.publish.hub.push import print_push_result, publish_to_hub
from exporter.export.publish.hub.retry import Backoff, is_transient
from exporter.shared.runs import RunDir

FAST = Backoff(attempts=3, first_delay=0.01, max_delay=0.05)
OWNER, BASE = "tester", "demo"
CAPTURES = f"{OWNER}/{BASE}-captures"
DEMO_TRACES = f"{OWNER}/{BASE}-demo-traces"
CLAUDE_TRACES = f"{OWNER}/{BASE}-claude-traces"


@pytest.fixture
def api(hub: FakeHub) -> HfApi:
    return HfApi(endpoint=hub.url, token=hub.token)


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """Three runs: demo with traces (two calls, two models → two parquet files), claude with
    traces, demo without traces."""
    runs = tmp_path / "runs"
    write_run(
        runs,
        "run-a",
        [make_record(seq=1), make_record(seq=2, model="org/other-model", stream=True)],
        agent="demo",
        traces={"session.jsonl": '{"type":"session"}\n', "sub/agent.jsonl": '{"type":"message"}\n'},
    )
    write_run(runs, "run-b", [make_record(seq=1)], agent="claude", traces={"s.jsonl": "{}\n"})
    write_run(runs, "run-c", [make_record(seq=1), make_record(seq=2)], agent="demo")
    return runs


class Export:
    """Builds exports of chosen runs (each build mints new captures file names, like a new export)."""

    def __init__(self, runs_dir: Path, tmp_path: Path):
        self.runs_dir, self.tmp_path, self.count = runs_dir, tmp_path, 0

    def build(self, *run_ids: str, owner: str = OWNER, base: str = BASE) -> BuiltExport:
        self.count += 1
        runs = [RunDir.load(self.runs_dir / run_id) for run_id in run_ids]
        staging = self.tmp_path / f"staging-{self.count}"
        return build_export(runs, owner=owner, base=base, staging=staging, console=quiet())


@pytest.fixture
def export(runs_dir: Path, tmp_path: Path) -> Export:
    return Export(runs_dir, tmp_path)


def quiet() -> Console:
    return Console(file=io.StringIO(), width=400)


def push(built: BuiltExport, api: HfApi, **options) -> tuple[object, str]:
    console = quiet()
    summary = publish_to_hub(built, api=api, console=console, backoff=FAST, **options)
    print_push_result(console, summary)
    return summary, console.file.getvalue()  # type: ignore[attr-defined]


def data_files(hub: FakeHub, repo_id: str = CAPTURES) -> dict[str, bytes]:
    return {path: data for path, data in hub.files(repo_id).items() if path.startswith("data/")}


def rows_per_run(hub: FakeHub) -> Counter[str]:
    counts: Counter[str] = Counter()
    for data in data_files(hub).values():
        counts.update(pq.read_table(io.BytesIO(data)).column("run_id").to_pylist())
    return counts


def test_first_push_creates_private_repos_with_exact_files_and_one_commit_each(hub, api, export):
    built = export.build("run-a", "run-b", "run-c")
    summary, output = push(built, api)

    assert {repo_id for (_, repo_id) in hub.repos} == {CAPTURES, DEMO_TRACES, CLAUDE_TRACES}
    assert all(repo.private for repo in hub.repos.values())
    for bundle in built.bundles:
        repo_id = bundle.repo_id(OWNER)
        expected = {file.path for file in bundle.files} | {"README.md", ".gitattributes", INDEX_PATH}
        assert set(hub.files(repo_id)) == expected
        assert hub.files(repo_id)["README.md"] == bundle.card.encode()
        for file in bundle.files:
            assert hub.files(repo_id)[file.path] == bundle.local_path(file).read_bytes()
        assert len(hub.commits_to(repo_id)) == 1
    assert {path.split("/")[1] for path in hub.files(DEMO_TRACES) if path.startswith("traces/")} == {"run-a"}
    assert "traces/run-a/sub/agent.jsonl" in hub.files(DEMO_TRACES)

    [captures_commit] = hub.commits_to(CAPTURES)
    assert captures_commit.summary == (
        "agentcap export: add 4 parquet files from runs run-a, run-b, run-c; add dataset card"
    )
    assert "run `run-b`" in captures_commit.description
    index = json.loads(hub.files(CAPTURES)[INDEX_PATH])
    assert set(index["runs"]) == {"run-a", "run-b", "run-c"}
    assert rows_per_run(hub) == {"run-a": 2, "run-b": 1, "run-c": 2}

    [collection] = hub.collections_of(OWNER)
    assert collection["title"] == BASE and collection["private"]
    assert sorted(item["id"] for item in collection["items"]) == sorted(
        [CAPTURES, DEMO_TRACES, CLAUDE_TRACES]
    )
    for repo_id in (CAPTURES, DEMO_TRACES, CLAUDE_TRACES):
        assert f"{hub.url}/datasets/{repo_id}" in output
    assert f"{hub.url}/collections/{collection['slug']}" in output
    assert summary.collection_url == f"{hub.url}/collections/{collection['slug']}"


def test_public_creates_public_repos_but_an_existing_repo_keeps_its_visibility(hub, api, export):
    hub.create_repo(CAPTURES, private=True)
    _, output = push(export.build("run-a"), api, public=True)

    assert hub.repos[("dataset", CAPTURES)].private is True
    assert hub.repos[("dataset", DEMO_TRACES)].private is False
    assert hub.collections_of(OWNER)[0]["private"] is False
    assert f"{CAPTURES} exists and is private; visibility kept" in output
    create_payloads = [r for r in hub.requests_of("create_repo") if r.status == 200]
    assert len(create_payloads) == 1  # only the traces repo was created


def test_card_is_written_once_and_a_user_edited_card_survives(hub, api, export):
    push(export.build("run-a"), api)
    edited = "---\nlicense: mit\n---\n\n# My hand-written card\n"
    hub.put_file(CAPTURES, "README.md", edited)

    push(export.build("run-b", "run-c"), api)

    assert hub.files(CAPTURES)["README.md"] == edited.encode()
    last = hub.commits_to(CAPTURES)[-1]
    assert "README.md" not in last.added and "dataset card" not in last.summary
    assert rows_per_run(hub) == {"run-a": 2, "run-b": 1, "run-c": 2}
    # A card is seeded into a repo that has none, even when the repo existed already.
    assert hub.files(CLAUDE_TRACES)["README.md"].startswith(b"---")


def test_re_export_of_a_published_run_is_skipped_with_a_note(hub, api, export):
    push(export.build("run-a"), api)
    before = {repo_id: hub.files(repo_id) for (_, repo_id) in hub.repos}
    commits = len(hub.commits)

    summary, output = push(export.build("run-a"), api)

    assert len(hub.commits) == commits
    assert {repo_id: hub.files(repo_id) for (_, repo_id) in hub.repos} == before
    assert f"{CAPTURES}: run run-a is already in the repo; skipped (use --replace to overwrite it)" in output
    captures, traces = summary.repos
    assert captures.plan.skipped_runs == ["run-a"]
    # Trace paths are deterministic: identical files count as already published, no note needed.
    assert traces.plan.present_runs == ["run-a"] and f"{DEMO_TRACES}: run run-a" not in output
    assert rows_per_run(hub) == {"run-a": 2}


def test_replace_swaps_a_runs_files_in_one_commit(hub, api, export):
    push(export.build("run-a", "run-c"), api)
    first_index = json.loads(hub.files(CAPTURES)[INDEX_PATH])["runs"]
    rebuilt = export.build("run-a")

    push(rebuilt, api, replace=True)

    commit = hub.commits_to(CAPTURES)[-1]
    assert commit.summary == "agentcap export: replace run run-a"
    new_a = {file.path for file in rebuilt.bundles[0].files}
    assert set(commit.deleted) == set(first_index["run-a"]["files"])
    assert set(commit.added) == new_a | {INDEX_PATH}
    assert set(data_files(hub)) == new_a | set(first_index["run-c"]["files"])
    index = json.loads(hub.files(CAPTURES)[INDEX_PATH])["runs"]
    assert set(index["run-a"]["files"]) == new_a
    assert rows_per_run(hub) == {"run-a": 2, "run-c": 2}
    assert len(hub.commits_to(CAPTURES)) == 2
    # Trace files keep their paths: replaced in place, nothing deleted, unchanged content not re-sent.
    assert hub.commits_to(DEMO_TRACES)[-1].deleted == []


def test_runs_are_found_from_parquet_footers_when_the_index_is_missing(hub, api, export):
    push(export.build("run-a"), api)
    hub.delete_file(CAPTURES, INDEX_PATH)
    hub.requests.clear()

    push(export.build("run-a", "run-b"), api)

    ranged = [r for r in hub.requests_of("resolve") if r.repo_id == CAPTURES and r.range]
    assert ranged, "expected ranged footer reads of the unindexed parquet files"
    assert rows_per_run(hub) == {"run-a": 2, "run-b": 1}
    index = json.loads(hub.files(CAPTURES)[INDEX_PATH])
    assert set(index["runs"]) == {"run-a", "run-b"}  # the index is healed


def test_two_pushes_leave_one_collection_with_exactly_the_right_items(hub, api, export):
    hub.page_size = 5
    for number in range(24):  # the collection we want is not among the first 20 results
        api.create_collection(f"other-{number:02d}", namespace=OWNER)
    api.create_collection(f"{BASE}-archive", namespace=OWNER)
    hub.requests.clear()

    push(export.build("run-a"), api)
    push(export.build("run-b"), api)
    push(export.build("run-b"), api)

    [collection] = [c for c in hub.collections_of(OWNER) if c["title"] == BASE]
    assert [item["id"] for item in collection["items"]] == [CAPTURES, DEMO_TRACES, CLAUDE_TRACES]
    assert len(hub.requests_of("collection_create")) == 1
    assert len([r for r in hub.requests_of("collection_add_item")]) == 3


def test_a_transient_500_on_commit_is_retried(hub, api, export):
    hub.fail_next("commit", 500)
    _, output = push(export.build("run-a"), api)

    assert "HTTP 500" in output and "retrying" in output
    assert len(hub.commits_to(CAPTURES)) == 1
    assert rows_per_run(hub) == {"run-a": 2}


def test_a_lost_commit_response_is_not_committed_twice(hub, api, export):
    hub.fail_next("commit", 504, after_apply=True)
    summary, _ = push(export.build("run-a", "run-b"), api)

    assert len(hub.commits_to(CAPTURES)) == 1
    assert rows_per_run(hub) == {"run-a": 2, "run-b": 1}
    assert summary.repos[0].plan.present_runs == ["run-a", "run-b"]


def test_500_on_the_first_commit_publishes_nothing_then_a_clean_rerun_completes(hub, api, export):
    hub.fail_next("commit", 500, times=FAST.attempts)
    with pytest.raises(AbortExport) as failure:
        push(export.build("run-a"), api)
    message = failure.value.message
    assert "\n" not in message
    assert message.startswith(f"pushing {CAPTURES} failed: the Hub had a server error (HTTP 500")
    assert message.endswith("nothing was published")
    assert not data_files(hub)

    push(export.build("run-a"), api)
    assert rows_per_run(hub) == {"run-a": 2}
    assert len(hub.commits_to(CAPTURES)) == 1
    assert len(hub.collections_of(OWNER)) == 1


def test_interrupted_between_repos_rerun_completes_without_duplicate_rows(hub, api, export):
    hub.fail_next("commit", 503, times=FAST.attempts, repo_id=DEMO_TRACES)
    with pytest.raises(AbortExport) as failure:
        push(export.build("run-a", "run-b"), api)
    published = f"already published: {CAPTURES}, {CLAUDE_TRACES} (re-running skips them)"
    assert failure.value.message.endswith(published)
    assert hub.commits_to(DEMO_TRACES) == [] and hub.collections == {}

    _, output = push(export.build("run-a", "run-b"), api)  # a new export: new captures file names

    assert rows_per_run(hub) == {"run-a": 2, "run-b": 1}
    assert len(hub.commits_to(CAPTURES)) == 1
    assert len(hub.commits_to(DEMO_TRACES)) == 1 and len(hub.commits_to(CLAUDE_TRACES)) == 1
    assert "run run-a is already in the repo; skipped" in output


def test_dry_run_reads_but_writes_nothing(hub, api, export):
    push(export.build("run-a"), api)
    state = {repo_id: hub.files(repo_id) for (_, repo_id) in hub.repos}
    collections = json.dumps(hub.collections, sort_keys=True)
    hub.requests.clear()

    summary, output = push(export.build("run-a", "run-b"), api, dry_run=True, replace=True)

    assert hub.write_requests() == []
    assert {r.kind for r in hub.requests} <= {
        "repo_info",
        "tree",
        "paths_info",
        "resolve",
        "collections_list",
        "collection_get",
    }
    assert {repo_id: hub.files(repo_id) for (_, repo_id) in hub.repos} == state
    assert json.dumps(hub.collections, sort_keys=True) == collections
    assert f"dry-run: create dataset repo {CLAUDE_TRACES} (private)" in output
    assert f"dry-run: use existing dataset repo {CAPTURES} (private, visibility kept)" in output
    assert "dry-run:   delete data/train-demo-" in output
    assert "dry-run:   add data/train-claude-" in output
    assert "dry-run:   keep README.md (already there, never overwritten)" in output
    assert f"dry-run:   add item dataset {CLAUDE_TRACES}" in output
    assert "nothing was created, uploaded or changed" in output
    assert summary.collection_url is None


def test_publishing_without_a_token_is_refused_before_any_request(hub, export):
    with pytest.raises(UserError, match="no Hugging Face token found; run `hf auth login`"):
        push(export.build("run-a"), HfApi(endpoint=hub.url, token=False))
    assert hub.requests == []


def test_dry_run_without_a_token_sends_no_request(hub, export):
    anonymous = HfApi(endpoint=hub.url, token=False)
    _, output = push(export.build("run-a"), anonymous, dry_run=True)
    assert hub.requests == []
    assert "remote state not read" in output
    assert f"dry-run: create dataset repo {CAPTURES} (private) if it does not exist" in output
    assert "dry-run: find or create collection 'demo' under tester" in output


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("bad-token", "the Hub rejected the token"),
        ("foreign-owner", "permission denied"),
        ("rate-limit", "rate-limited by the Hub (HTTP 429"),
        ("not-found", "not found (HTTP 404"),
    ],
)
def test_hub_errors_become_one_line_messages(hub, api, export, setup, expected):
    owner = OWNER
    if setup == "bad-token":
        api = HfApi(endpoint=hub.url, token="hf_wrong_token")
    elif setup == "foreign-owner":
        owner = "somebody-else"
    elif setup == "rate-limit":
        hub.fail_next("commit", 429, times=FAST.attempts)
    elif setup == "not-found":
        hub.fail_next("collection_add_item", 404, headers={"X-Error-Code": "RepoNotFound"})
    with pytest.raises(AbortExport) as failure:
        push(export.build("run-a", owner=owner), api)
    message = failure.value.message
    assert expected in message and "\n" not in message
    if setup == "bad-token":
        assert "hf auth login" in message
    if setup == "not-found":
        assert message.startswith(f"updating the collection '{BASE}' of {OWNER} failed")
        assert f"already published: {CAPTURES}, {DEMO_TRACES}" in message


def test_demo_like_export_loads_back_through_hf_hub_download(hub, api, export, tmp_path):
    from huggingface_hub import hf_hub_download

    built = export.build("run-a", "run-b", "run-c")
    push(built, api)

    tables = []
    for file in built.bundles[0].files:
        local = hf_hub_download(
            CAPTURES,
            file.path,
            repo_type="dataset",
            endpoint=hub.url,
            token=hub.token,
            cache_dir=tmp_path / "dl",
        )
        table = pq.read_table(local)
        assert pq.read_metadata(local).metadata[b"run_id"].decode() == file.run_id
        tables.append(table)
    assert sum(table.num_rows for table in tables) == 5
    assert {table.schema for table in tables} == {tables[0].schema}
    assert tables[0].column_names[:3] == ["request_id", "model", "captured_at"]
    trace = hf_hub_download(
        DEMO_TRACES,
        "traces/run-a/session.jsonl",
        repo_type="dataset",
        endpoint=hub.url,
        token=hub.token,
        cache_dir=tmp_path / "dl",
    )
    assert Path(trace).read_text() == '{"type":"session"}\n'
    for _, repo_id in hub.repos:
        for data in hub.files(repo_id).values():
            assert CANARY_KEY.encode() not in data


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (httpx2.ConnectError("[Errno 111] Connection refused"), False),
        (httpx2.ConnectError("[Errno -2] Name or service not known"), False),
        (httpx2.ConnectTimeout("timed out"), True),
        (httpx2.ReadTimeout("timed out"), True),
        (httpx2.RemoteProtocolError("peer closed connection"), True),
    ],
)
def test_only_failures_that_can_pass_are_retried(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient
