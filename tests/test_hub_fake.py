"""The fake Hub itself: what other tests rely on (ranged reads, auth, error headers, paging)."""

from __future__ import annotations

import httpx2
import pytest
from fake_hub import FakeHub, git_blob_oid
from huggingface_hub import CommitOperationAdd, HfApi, HfFileSystem
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

REPO = "tester/data"
PAYLOAD = bytes(range(256)) * 40  # 10 KiB


@pytest.fixture
def hub():
    with FakeHub() as hub:
        hub.create_repo(REPO, private=False)
        hub.put_file(REPO, "blob.bin", PAYLOAD)
        yield hub


def get(hub: FakeHub, path: str, **headers: str) -> httpx2.Response:
    return httpx2.get(f"{hub.url}{path}", headers={"Authorization": f"Bearer {hub.token}", **headers})


@pytest.mark.parametrize(
    ("range_header", "status", "body", "content_range"),
    [
        ("bytes=0-9", 206, PAYLOAD[:10], "bytes 0-9/10240"),
        ("bytes=10200-", 206, PAYLOAD[10200:], "bytes 10200-10239/10240"),
        ("bytes=-8", 206, PAYLOAD[-8:], "bytes 10232-10239/10240"),
        ("bytes=20000-20010", 416, b"", "bytes */10240"),
    ],
)
def test_resolve_serves_http_ranges(hub, range_header, status, body, content_range):
    response = get(hub, f"/datasets/{REPO}/resolve/main/blob.bin", Range=range_header)
    assert response.status_code == status
    assert response.content == body
    assert response.headers["Content-Range"] == content_range
    assert hub.requests[-1].range == range_header


def test_whole_file_download_carries_the_headers_hf_hub_download_needs(hub):
    response = get(hub, f"/datasets/{REPO}/resolve/main/blob.bin")
    assert response.status_code == 200 and response.content == PAYLOAD
    assert response.headers["ETag"] == f'"{git_blob_oid(PAYLOAD)}"'
    assert response.headers["X-Repo-Commit"] == hub.repos[("dataset", REPO)].head.oid


def test_hf_file_system_reads_with_ranges(hub):
    filesystem = HfFileSystem(endpoint=hub.url, token=hub.token, skip_instance_cache=True)
    with filesystem.open(f"datasets/{REPO}/blob.bin", "rb", block_size=1024) as handle:
        handle.seek(5000)
        assert handle.read(16) == PAYLOAD[5000:5016]
    assert any(request.range for request in hub.requests_of("resolve"))


def test_tokens_are_checked(hub):
    anonymous = HfApi(endpoint=hub.url, token=False)
    assert anonymous.file_exists(REPO, "blob.bin", repo_type="dataset")  # public reads need no token
    with pytest.raises(HfHubHTTPError) as error:
        anonymous.create_repo("tester/new", repo_type="dataset")
    assert error.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as error:
        HfApi(endpoint=hub.url, token="hf_wrong").whoami()
    assert error.value.response.status_code == 401
    hub.create_repo("tester/secret", private=True)
    assert not anonymous.repo_exists("tester/secret", repo_type="dataset")


def test_injected_errors_carry_the_hub_headers(hub):
    api = HfApi(endpoint=hub.url, token=hub.token)
    hub.fail_next("repo_info", 404)
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info(REPO, repo_type="dataset")
    hub.fail_next("commit", 429, repo_id=REPO)
    with pytest.raises(HfHubHTTPError) as error:
        api.create_commit(REPO, [CommitOperationAdd("x", b"1")], commit_message="m", repo_type="dataset")
    assert error.value.response.headers["Retry-After"] == "0"
    assert "x" not in hub.files(REPO)
    hub.fail_next("commit", 500, after_apply=True)
    with pytest.raises(HfHubHTTPError):
        api.create_commit(REPO, [CommitOperationAdd("y", b"1")], commit_message="m", repo_type="dataset")
    assert hub.files(REPO)["y"] == b"1"  # the commit landed; only its answer was lost


def test_parent_commit_mismatch_is_rejected(hub):
    api = HfApi(endpoint=hub.url, token=hub.token)
    stale = api.repo_info(REPO, repo_type="dataset").sha
    hub.put_file(REPO, "README.md", "edited")
    with pytest.raises(HfHubHTTPError) as error:
        api.create_commit(
            REPO,
            [CommitOperationAdd("z", b"1")],
            commit_message="m",
            repo_type="dataset",
            parent_commit=stale,
        )
    assert error.value.response.status_code == 412


def test_listings_are_paginated_and_collection_listings_truncate_items(hub):
    api = HfApi(endpoint=hub.url, token=hub.token)
    hub.page_size = 3
    for number in range(7):
        hub.put_file(REPO, f"dir/f{number}.txt", str(number))
    assert len([entry for entry in api.list_repo_tree(REPO, "dir", repo_type="dataset")]) == 7
    collection = api.create_collection("many", namespace="tester")
    for number in range(6):
        api.create_repo(f"tester/r{number}", repo_type="dataset")
        api.add_collection_item(collection.slug, f"tester/r{number}", "dataset")
    [listed] = api.list_collections(owner="tester")
    assert len(listed.items) == 4
    assert len(api.get_collection(collection.slug).items) == 6
