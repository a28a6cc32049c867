"""How `agentcap run` points each agent at the proxy: one table, mirrored in docs/run.md.

A wiring says which variables the agent gets, which config files are written into its temporary
HOME, which arguments start a task's first turn and which continue its session, and where its
native sessions are (a `rollouts` format, collected into the run after each task). Strings are
templates:

    {openai_base}  OpenAI-style base URL ending in /v1 (reverse mode: the proxy; regular: the upstream)
    {base}         the same without /v1 (Anthropic SDKs, goose and Gemini add their own path)
    {key}          the placeholder key; the proxy sends the real one upstream in its place
    {model}        --model
    {home}         the task's HOME
    {prompt}       the turn's prompt (arguments only)
    {prompt_words} the prompt as one argument per space-separated word (a whole argument only; for
                   agents that join their arguments with spaces but quote one that holds a space)
    {prompt_stdin} no argument: the prompt is the agent's stdin (a whole argument only; for agents
                   whose parser takes any argument starting with `-` or `@` for an option or a file)
    {task}         the task id (arguments only)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROMPT = "{prompt}"
PROMPT_WORDS = "{prompt_words}"
PROMPT_STDIN = "{prompt_stdin}"
# The provider id under which opencode and pi get the proxy as a custom OpenAI-compatible provider.
PROVIDER_ID = "agentcap"


@dataclass(frozen=True)
class Wiring:
    name: str
    executable: str | None  # the default AGENT_COMMAND; None: the command is required (generic)
    key_env: str  # the default --upstream-key-env: where this agent's provider key usually lives
    first_turn: tuple[str, ...]  # arguments appended for a task's first turn
    next_turn: tuple[str, ...]  # ... and for a follow-up turn: they continue the agent's own session
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, Any] = field(default_factory=dict)  # HOME-relative path -> JSON or TOML document
    traces: str | None = None  # rollouts format of the agent's native sessions
    record_paths: tuple[str, ...] = ()  # API paths to record on top of the addon's defaults
    verified: bool = False  # exercised by the test suite against the real CLI


AGENTS: dict[str, Wiring] = {
    wiring.name: wiring
    for wiring in (
        Wiring(
            name="pi",
            executable="pi",
            key_env="OPENAI_API_KEY",
            # pi's parser has no `--`: a prompt starting with `-` or `@` would be an option or a file.
            # In print mode it takes piped stdin as the message.
            first_turn=("--provider", PROVIDER_ID, "--model", "{model}", "-p", PROMPT_STDIN),
            next_turn=("--provider", PROVIDER_ID, "--model", "{model}", "-p", "--continue", PROMPT_STDIN),
            env={"PI_OFFLINE": "1", "PI_TELEMETRY": "0"},
            files={
                ".pi/agent/models.json": {
                    "providers": {
                        PROVIDER_ID: {
                            "baseUrl": "{openai_base}",
                            "api": "openai-completions",
                            "apiKey": "{key}",
                            "models": [{"id": "{model}"}],
                        }
                    }
                }
            },
            traces="pi",
            verified=True,
        ),
        Wiring(
            name="opencode",
            executable="opencode",
            key_env="OPENAI_API_KEY",
            # `opencode run` joins its message arguments with spaces, quoting any that holds a space:
            # one word per argument, after `--` (no word is taken for a flag), arrives as written.
            first_turn=("run", "--model", f"{PROVIDER_ID}/{{model}}", "--", PROMPT_WORDS),
            next_turn=("run", "--continue", "--model", f"{PROVIDER_ID}/{{model}}", "--", PROMPT_WORDS),
            # No models.dev catalogue fetch (the provider's model is declared below), no LSP downloads.
            env={"OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_LSP_DOWNLOAD": "1"},
            files={
                ".config/opencode/opencode.json": {
                    "$schema": "https://opencode.ai/config.json",
                    "autoupdate": False,
                    "share": "disabled",
                    "model": f"{PROVIDER_ID}/{{model}}",
                    "provider": {
                        PROVIDER_ID: {
                            "npm": "@ai-sdk/openai-compatible",
                            "name": PROVIDER_ID,
                            "options": {"baseURL": "{openai_base}", "apiKey": "{key}"},
                            "models": {"{model}": {"name": "{model}"}},
                        }
                    },
                }
            },
            traces="opencode",
            verified=True,
        ),
        Wiring(
            name="codex",
            executable="codex",
            key_env="OPENAI_API_KEY",
            # After `--`, a prompt starting with a dash is not taken for a flag.
            first_turn=("exec", "--skip-git-repo-check", "--", PROMPT),
            next_turn=("exec", "resume", "--last", "--skip-git-repo-check", "--", PROMPT),
            env={"CODEX_HOME": "{home}/.codex", "OPENAI_API_KEY": "{key}"},
            files={
                ".codex/config.toml": {
                    "model": "{model}",
                    "model_provider": PROVIDER_ID,
                    # Nothing but the provider's calls: no update check, no plugin catalogue or curated
                    # plugin sync (chatgpt.com, github.com), no analytics (ab.chatgpt.com).
                    "check_for_update_on_startup": False,
                    "features": {"plugins": False},
                    "analytics": {"enabled": False},
                    "model_providers": {
                        PROVIDER_ID: {
                            "name": PROVIDER_ID,
                            "base_url": "{openai_base}",
                            "env_key": "OPENAI_API_KEY",
                            "wire_api": "responses",
                        }
                    },
                }
            },
            traces="codex",
            verified=True,
        ),
        Wiring(
            name="claude-code",
            executable="claude",
            key_env="ANTHROPIC_API_KEY",
            first_turn=("-p", "--", PROMPT),  # after `--`, a prompt starting with `-` is not an option
            next_turn=("-p", "--continue", "--", PROMPT),
            env={
                "ANTHROPIC_BASE_URL": "{base}",
                "ANTHROPIC_API_KEY": "{key}",
                "ANTHROPIC_MODEL": "{model}",
                # Every alias the CLI or a subagent picks is the served model (SMALL_FAST: before 2.0).
                "ANTHROPIC_DEFAULT_OPUS_MODEL": "{model}",
                "ANTHROPIC_DEFAULT_SONNET_MODEL": "{model}",
                "ANTHROPIC_DEFAULT_HAIKU_MODEL": "{model}",
                "ANTHROPIC_SMALL_FAST_MODEL": "{model}",
                "CLAUDE_CONFIG_DIR": "{home}/.claude",
                # No update check, telemetry or error reporting: model calls only, to the proxy.
                "DISABLE_AUTOUPDATER": "1",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            },
            traces="claude_code",
            verified=True,
        ),
        Wiring(
            name="goose",
            executable="goose",
            key_env="OPENAI_API_KEY",
            # One argument: as `-t PROMPT`, a prompt starting with `-` would be read as an option.
            first_turn=("run", "--name", "{task}", f"--text={PROMPT}"),
            next_turn=("run", "--name", "{task}", "--resume", f"--text={PROMPT}"),
            env={
                "GOOSE_PROVIDER": "openai",
                "GOOSE_MODEL": "{model}",
                "OPENAI_HOST": "{base}",
                "OPENAI_BASE_PATH": "v1/chat/completions",
                "OPENAI_API_KEY": "{key}",
                "GOOSE_DISABLE_KEYRING": "1",
            },
            traces="goose",
        ),
        Wiring(
            name="gemini-cli",
            executable="gemini",
            key_env="GEMINI_API_KEY",
            # One argument: as `-p PROMPT`, a prompt starting with `-` would be read as an option.
            first_turn=("-m", "{model}", f"--prompt={PROMPT}"),
            next_turn=("-m", "{model}", "--resume", "latest", f"--prompt={PROMPT}"),
            env={
                "GOOGLE_GEMINI_BASE_URL": "{base}",
                "GEMINI_API_KEY": "{key}",
                # Headless runs refuse an untrusted folder; the agent works in the user's project.
                "GEMINI_CLI_TRUST_WORKSPACE": "true",
            },
            files={
                ".gemini/settings.json": {
                    # Else the base URL alone selects the "gateway" auth, which 0.61 refuses headless.
                    "security": {"auth": {"selectedType": "gemini-api-key"}},
                    "privacy": {"usageStatisticsEnabled": False},
                    "telemetry": {"enabled": False},
                    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
                }
            },
            # Its calls (:streamGenerateContent) are among the addon's default paths. Its sessions
            # (~/.gemini/tmp/<project>/chats/*.jsonl) are no format `rollouts` reads yet.
            verified=True,
        ),
        Wiring(
            name="generic",
            executable=None,
            key_env="OPENAI_API_KEY",
            first_turn=(PROMPT,),
            next_turn=(PROMPT,),
            env={
                "OPENAI_BASE_URL": "{openai_base}",
                "OPENAI_API_BASE": "{openai_base}",
                "OPENAI_API_KEY": "{key}",
                "ANTHROPIC_BASE_URL": "{base}",
                "ANTHROPIC_API_KEY": "{key}",
            },
            verified=True,
        ),
    )
}


def render(template: Any, values: Mapping[str, str]) -> Any:
    """Fill a template's placeholders: strings (and dict keys) anywhere in a JSON-like document."""
    if isinstance(template, str):
        return template.format_map(values)
    if isinstance(template, Mapping):
        return {render(key, values): render(value, values) for key, value in template.items()}
    if isinstance(template, list | tuple):
        return [render(item, values) for item in template]
    return template


def toml_text(document: Mapping[str, Any], table: str = "") -> str:
    """Flat keys, then sub-tables; strings are written as JSON strings, which are valid TOML basic strings."""
    scalars = [
        f"{key} = {json.dumps(value)}" for key, value in document.items() if not isinstance(value, Mapping)
    ]
    lines = ([f"[{table}]"] if table and scalars else []) + scalars
    text = "".join(line + "\n" for line in lines)
    for key, value in document.items():
        if isinstance(value, Mapping):
            text += "\n" + toml_text(value, f"{table}.{key}" if table else key)
    return text


def write_config_files(wiring: Wiring, home: Path, values: Mapping[str, str]) -> list[Path]:
    """The wiring's config files below `home` (0600: they hold the placeholder key, never the real one)."""
    written = []
    for relative, template in wiring.files.items():
        document = render(template, values)
        path = home / relative
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = toml_text(document) if path.suffix == ".toml" else json.dumps(document, indent=2) + "\n"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        written.append(path)
    return written


@dataclass(frozen=True)
class TurnCommand:
    argv: list[str]
    stdin: str | None = None  # what the agent reads on stdin; None: nothing (/dev/null)


def turn_command(
    wiring: Wiring, command: Sequence[str], prompt: str | None, follow_up: bool, values: Mapping[str, str]
) -> TurnCommand:
    """One turn's argv and stdin. A literal {prompt} in the command takes the prompt instead of the wiring's arguments."""
    if prompt is None:
        return TurnCommand(list(command))
    if any(PROMPT in argument for argument in command):
        return TurnCommand([argument.replace(PROMPT, prompt) for argument in command])
    arguments, stdin = list(command), None
    for template in wiring.next_turn if follow_up else wiring.first_turn:
        if template == PROMPT_WORDS:
            arguments += prompt.split(" ")
        elif template == PROMPT_STDIN:
            stdin = prompt
        else:
            arguments.append(render(template, {**values, "prompt": prompt}))
    return TurnCommand(arguments, stdin)
