"""`agentcap run` below the processes: the agent table (and its copy in docs/run.md), tasks files, env rules."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from exporter.core.errors import UserError
from exporter.rollouts.registry import get_format
from exporter.run.keys import CREDENTIAL_NAME
from exporter.run.tasks import Task, plan_tasks
from exporter.run.wiring import AGENTS, TurnCommand, render, turn_command, write_config_files

ROOT = Path(__file__).resolve().parent.parent
VALUES = {
    "base": "http://127.0.0.1:4242",
    "openai_base": "http://127.0.0.1:4242/v1",
    "key": "agentcap-placeholder-" + "ab" * 16,
    "model": 'org/model "quoted"',
    "home": "/tmp/agent-home",
    "task": "task-01",
}


def docs_agent_rows() -> dict[str, list[str]]:
    """The agents table of docs/run.md: agent name -> its cells."""
    text = (ROOT / "docs" / "run.md").read_text()
    section = text.split("## Agents", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if line.startswith("| `"):
            rows[cells[0].strip("`")] = cells
    return rows


def test_docs_table_mirrors_the_wiring_table() -> None:
    rows = docs_agent_rows()
    assert list(rows) == list(AGENTS)
    for name, wiring in AGENTS.items():
        _, command, key_env, _, _, traces, tested = rows[name]
        assert command == (f"`{wiring.executable}`" if wiring.executable else "(yours, after `--`)"), name
        assert key_env == f"`{wiring.key_env}`", name
        assert traces == (f"`{wiring.traces}`" if wiring.traces else "none"), name
        assert tested.startswith("yes" if wiring.verified else "no"), name
        if wiring.traces:
            get_format(wiring.traces)  # a format `rollouts` and `traces collect` know


@pytest.mark.parametrize("name", list(AGENTS))
def test_every_wiring_renders_complete_config_pointing_at_the_proxy(name: str, tmp_path: Path) -> None:
    wiring = AGENTS[name]
    documents = []
    for path in write_config_files(wiring, tmp_path, VALUES):
        text = path.read_text()
        documents.append(tomllib.loads(text) if path.suffix == ".toml" else json.loads(text))
        assert path.stat().st_mode & 0o777 == 0o600
        assert not re.search(r"\{(base|openai_base|key|model|home|task|prompt)\}", text)
    for follow_up in (False, True):
        turn = turn_command(wiring, ["agent"], "do {it}", follow_up, VALUES)
        argv = turn.argv
        assert argv[0] == "agent"
        # The prompt, whole and unrendered: an argument (maybe `--option=PROMPT`), word by word, or stdin.
        whole = any(argument.endswith("do {it}") for argument in argv)
        assert whole or argv[-3:] == ["--", "do", "{it}"] or turn.stdin == "do {it}"
    assert VALUES["base"] in json.dumps([render(dict(wiring.env), VALUES), documents])  # the proxy, somewhere
    rendered = json.dumps([dict(wiring.env), dict(wiring.files)])
    placeholders = set(re.findall(r"\{(\w+)\}", rendered))
    assert placeholders <= set(VALUES), placeholders
    assert "{key}" in rendered  # the agent holds the placeholder, somewhere


def test_codex_config_is_the_documented_custom_provider(tmp_path: Path) -> None:
    [path] = write_config_files(AGENTS["codex"], tmp_path, VALUES)
    config = tomllib.loads(path.read_text())
    assert config["model"] == VALUES["model"] and config["model_provider"] == "agentcap"
    assert config["model_providers"]["agentcap"] == {
        "name": "agentcap",
        "base_url": VALUES["openai_base"],
        "env_key": "OPENAI_API_KEY",
        "wire_api": "responses",
    }
    # Offline but for the provider: no update check, no plugin catalogue sync, no analytics.
    assert config["check_for_update_on_startup"] is False
    assert config["features"] == {"plugins": False} and config["analytics"] == {"enabled": False}


def test_opencode_gets_the_prompt_word_by_word_as_it_joins_them() -> None:
    # `opencode run` joins its message arguments with " " and quotes any argument holding a space.
    prompt = 'Fix  the "-v" flag\nthen --help me '
    for follow_up in (False, True):
        argv = turn_command(AGENTS["opencode"], ["opencode"], prompt, follow_up, VALUES).argv
        words = argv[argv.index("--") + 1 :]
        assert " ".join(words) == prompt and not any(" " in word for word in words)
        assert ("--continue" in argv) is follow_up
        assert argv[argv.index("--model") + 1] == f"agentcap/{VALUES['model']}"


def test_a_prompt_placeholder_in_the_command_takes_the_prompt() -> None:
    command = ["my-agent", "--task={prompt}", "--quiet"]
    assert turn_command(AGENTS["pi"], command, "fix it", False, VALUES) == TurnCommand(
        ["my-agent", "--task=fix it", "--quiet"]
    )
    assert turn_command(AGENTS["generic"], ["my-agent"], None, False, VALUES) == TurnCommand(["my-agent"])
    assert turn_command(AGENTS["generic"], ["my-agent"], "fix it", True, VALUES) == TurnCommand(
        ["my-agent", "fix it"]
    )


def test_pi_reads_the_prompt_on_stdin_so_no_prompt_is_taken_for_an_option() -> None:
    # pi's parser has no `--`: "-v" would be --version, "@notes" a file to attach.
    for prompt in ("-v: fix it", "@notes please"):
        for follow_up in (False, True):
            turn = turn_command(AGENTS["pi"], ["pi"], prompt, follow_up, VALUES)
            assert turn.stdin == prompt and prompt not in turn.argv
            assert turn.argv[-1] == ("--continue" if follow_up else "-p")


def test_plain_tasks_file_with_turns_and_followup(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("# comment\nfirst prompt\n\n  second prompt  \n")
    assert plan_tasks(tasks, None, 3, None) == [
        Task("task-01", ("first prompt", "Continue.", "Continue.")),
        Task("task-02", ("second prompt", "Continue.", "Continue.")),
    ]
    assert plan_tasks(tasks, None, None, None)[0].prompts == ("first prompt",)
    assert plan_tasks(tasks, None, 2, "More.")[1].prompts == ("second prompt", "More.")


def test_jsonl_tasks_with_ids_and_followups(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    lines = [
        {"task_id": "issue 42/fix", "prompt": "Fix it", "followups": ["Test it", "Ship it"]},
        {"prompt": "Other"},
        {"task_id": 7, "prompt": "Number id"},
    ]
    tasks.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert plan_tasks(tasks, None, None, None) == [
        Task("issue-42-fix", ("Fix it", "Test it", "Ship it")),
        Task("task-02", ("Other",)),
        Task("7", ("Number id",)),
    ]
    assert plan_tasks(tasks, None, 2, None)[0].prompts == ("Fix it", "Test it")  # --turns caps the followups


def test_no_prompt_is_one_attached_session_and_prompt_is_one_task() -> None:
    assert plan_tasks(None, None, None, None) == [Task(None, ())]
    assert plan_tasks(None, None, None, None)[0].attached
    assert plan_tasks(None, "hi", 2, None) == [Task("task-01", ("hi", "Continue."))]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "a"}\n{"prompt": "a"\n', "tasks.jsonl:2: not JSON"),
        ('{"task_id": "x", "prompt": "a"}\n{"task_id": "x", "prompt": "b"}\n', "task_id 'x' appears twice"),
        ('{"task_id": "x"}\n', "tasks.jsonl:1: prompt must be a non-empty string"),
        (
            '{"prompt": "a", "followups": "b"}\n',
            "tasks.jsonl:1: followups must be a list of non-empty strings",
        ),
        ('{"prompt": "a", "task_id": "///"}\n', "tasks.jsonl:1: task_id '///' has no letters or digits"),
        ("# nothing but comments\n\n", "tasks.jsonl: holds no tasks"),
        ("[1, 2]\n", None),  # a plain-text prompt that happens to look like JSON: fine
    ],
)
def test_tasks_file_mistakes_name_the_line(content: str, message: str | None, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(content)
    if message is None:
        assert plan_tasks(tasks, None, None, None) == [Task("task-01", ("[1, 2]",))]
        return
    with pytest.raises(UserError) as error:
        plan_tasks(tasks, None, None, None)
    assert message in error.value.message


def test_prompt_options_must_make_sense_together(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not both"):
        plan_tasks(tmp_path / "t", "hi", None, None)
    with pytest.raises(UserError, match="need prompts"):
        plan_tasks(None, None, 2, None)


@pytest.mark.parametrize(
    ("name", "withheld"),
    [
        ("OPENAI_API_KEY", True),
        ("GITHUB_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("AWS_ACCESS_KEY_ID", True),
        ("DB_PASSWORD", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("HF_TOKEN", True),
        ("apikey", True),
        ("TOKENIZERS_PARALLELISM", False),
        ("PATH", False),
        ("KEYBOARD_LAYOUT", False),
        ("SECRETARY_NAME", False),
    ],
)
def test_credential_looking_names(name: str, withheld: bool) -> None:
    assert bool(CREDENTIAL_NAME.search(name)) is withheld
