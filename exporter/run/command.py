"""`agentcap run`: capture a real agent in one command (docs/run.md).

Checks everything it can before it creates anything (agent, command, tasks, key, port, upstream),
then: mitmdump with the addon on 127.0.0.1, the agent wired to it with a placeholder key, each task's
turns tagged through the addon's context endpoint, the agent's native sessions collected after each
task, the proxy stopped with SIGINT, and a one-screen summary with the next command.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from agentcap_addon.agentcap import sanitize_tag

from exporter.cli_base import Command, runs_dir_option, warn
from exporter.core.errors import AbortRun, UserError
from exporter.rollouts.registry import get_format
from exporter.run.agent_run import SESSIONS_DIR, AgentRunRecord, utc_iso
from exporter.run.keys import UpstreamKey, isolate_environment, new_placeholder, read_upstream_key
from exporter.run.proxy import Proxy, ProxySettings, find_mitmdump
from exporter.run.runner import AgentRunner, TurnOutcome, sigint_ignored
from exporter.run.tasks import Task, plan_tasks
from exporter.run.wiring import AGENTS, Wiring, render, turn_command, write_config_files
from exporter.shared.run_summary import summarize_run
from exporter.shared.runs import RunDir
from exporter.shared.totals import run_facts, totals_of
from exporter.traces.collect import Window, collect_traces

DEFAULT_TIMEOUT_S = 1200.0
REACH_TIMEOUT_S = 5.0
MITMPROXY_CA = Path("~/.mitmproxy/mitmproxy-ca-cert.pem")
CA_VARIABLES = (
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "CODEX_CA_CERTIFICATE",
)
# Turn statuses after which the task's remaining turns are not run.
ENDS_TASK = frozenset({"timeout", "interrupted", "proxy_failed"})
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class RunPlan:
    wiring: Wiring
    command: tuple[str, ...]
    tasks: list[Task]
    model: str
    upstream: str  # scheme://host[:port]
    mode: str
    port: int
    runs_dir: Path
    run_id: str
    key: UpstreamKey | None
    pass_env: tuple[str, ...]
    timeout: float | None
    home: Path | None


@click.command("run", cls=Command, context_settings={"allow_interspersed_args": False})
@click.option(
    "--agent", "agent_name", default="generic", show_default=True, help="Agent wiring: " + ", ".join(AGENTS)
)
@click.option("--upstream", help="The model server the calls go to, e.g. https://api.openai.com (no path).")
@click.option("--model", default="", help="Model id the agent asks for (required except for generic).")
@click.option(
    "--tasks", "tasks_file", type=click.Path(path_type=Path), help="Prompts, one per line, or JSONL."
)
@click.option("--prompt", help="One task with this prompt.")
@click.option("--turns", type=click.IntRange(min=1), help="Turns per task (default: 1 + its followups).")
@click.option("--followup", help='Prompt of follow-up turns a task does not list (default: "Continue.").')
@click.option("--run-id", help="Run directory name (default: <agent>-<UTC time>-<6 hex>).")
@runs_dir_option(purpose="Where the run directory is created")
@click.option(
    "--upstream-key-env", metavar="VAR", help="Variable holding the upstream key (default: the agent's)."
)
@click.option("--no-key", is_flag=True, help="The upstream needs no key (a local server).")
@click.option(
    "--pass-env", multiple=True, metavar="NAME", help="Pass this credential-looking variable to the agent."
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Proxy port on 127.0.0.1 (default: a free one)."
)
@click.option(
    "--mode",
    type=click.Choice(["reverse", "regular"]),
    default="reverse",
    show_default=True,
    help="reverse: the agent's base URL is the proxy; regular: HTTPS_PROXY + mitmproxy's CA.",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds per turn (default 1200)."
)
@click.option(
    "--home", type=click.Path(file_okay=False, path_type=Path), help="Keep the agent's HOMEs under DIR."
)
@click.argument("agent_command", nargs=-1, type=click.UNPROCESSED)
def run_command(agent_name: str, agent_command: tuple[str, ...], **options: Any) -> None:
    """Run an agent through the capture proxy: tasks × turns, tagged, key kept out of its reach.

    \b
    agentcap run --agent pi --model gpt-4.1 --upstream https://api.openai.com --tasks tasks.txt
    agentcap run --agent generic --upstream http://127.0.0.1:8000 --no-key -- python my_agent.py

    AGENT_COMMAND (after --) replaces the agent's default command; the wiring's turn arguments are
    appended, unless it holds {prompt}, which then takes the prompt. See docs/run.md.
    """
    run = execute(make_plan(agent_name, agent_command, **options))
    if run.status == "interrupted":
        raise click.exceptions.Exit(EXIT_INTERRUPTED)
    if run.status != "complete" or run.unsuccessful_turns():
        raise click.exceptions.Exit(1)


# ---------------------------------------------------------------- checks, before anything is created
def make_plan(
    agent_name: str,
    agent_command: tuple[str, ...],
    *,
    upstream: str | None,
    model: str,
    tasks_file: Path | None,
    prompt: str | None,
    turns: int | None,
    followup: str | None,
    run_id: str | None,
    runs_dir: Path,
    upstream_key_env: str | None,
    no_key: bool,
    pass_env: tuple[str, ...],
    port: int,
    mode: str,
    timeout: float | None,
    home: Path | None,
) -> RunPlan:
    wiring = AGENTS.get(agent_name)
    if wiring is None:
        raise UserError(
            f"unknown agent {agent_name!r}: use one of {', '.join(AGENTS)} (generic runs any command)"
        )
    if tasks_file is not None and not tasks_file.is_file():
        raise UserError(f"--tasks {tasks_file}: no such file")
    tasks = plan_tasks(tasks_file, prompt, turns, followup)
    if not model and wiring.name != "generic":
        raise UserError(f"--model is required for {wiring.name}: the model id the upstream serves")
    if upstream is None:
        raise UserError("--upstream URL is required: the model server the agent's calls go to")
    origin = parse_upstream(upstream)
    command = resolve_command(wiring, agent_command)
    if run_id is not None and sanitize_tag(run_id) != run_id:
        raise UserError(
            f"--run-id {run_id!r}: use letters, digits, '.', '_' and '-', not starting with '.' or '-'"
        )
    if run_id is not None and (runs_dir / run_id).exists():
        raise UserError(f"run {run_id} already exists in {runs_dir}; pick another --run-id")
    if runs_dir.exists() and not runs_dir.is_dir():
        raise UserError(f"--runs-dir {runs_dir} is not a directory")
    key = None if no_key else read_upstream_key(upstream_key_env or wiring.key_env)
    if port:
        check_port_free(port)
    check_reachable(origin)
    find_mitmdump()
    return RunPlan(
        wiring=wiring,
        command=command,
        tasks=tasks,
        model=model,
        upstream=origin,
        mode=mode,
        port=port,
        runs_dir=runs_dir,
        run_id=run_id or new_run_id(wiring.name),
        key=key,
        pass_env=pass_env,
        timeout=timeout if timeout is not None else (None if tasks[0].attached else DEFAULT_TIMEOUT_S),
        home=home,
    )


def parse_upstream(text: str) -> str:
    """scheme://host[:port]; a trailing /v1 is dropped (the wirings add it where the agent expects it)."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--upstream {text!r}: give an http(s) URL such as https://api.openai.com")
    path = parts.path.rstrip("/").removesuffix("/v1")
    if path or parts.query or parts.fragment or parts.username or parts.password:
        raise UserError(
            f"--upstream {text!r}: give scheme://host[:port] only; the proxy forwards paths as sent"
        )
    return f"{parts.scheme}://{parts.netloc}"


def resolve_command(wiring: Wiring, given: tuple[str, ...]) -> tuple[str, ...]:
    command = given or ((wiring.executable,) if wiring.executable else ())
    if not command:
        raise UserError("generic runs the command you give after --, e.g. -- python my_agent.py")
    found = shutil.which(command[0])
    if found is None:
        raise UserError(f"command not found: {command[0]}; install the agent or give its path after --")
    return (found, *command[1:])


def check_port_free(port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise UserError(
                f"port {port} on 127.0.0.1 is in use; pick another --port or leave it out"
            ) from None


def check_reachable(origin: str) -> None:
    parts = urlsplit(origin)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), REACH_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UserError(
            f"cannot reach the upstream {origin} ({reason}); check --upstream and that it is up"
        ) from None


def new_run_id(agent: str) -> str:
    return f"{agent}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


# ---------------------------------------------------------------- the run
class Run:
    """State of one execution: the proxy, the agent runner, the record, the temporary HOMEs."""

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
        self.path = plan.runs_dir / plan.run_id
        self.runner = AgentRunner(Path.cwd())
        self.placeholder = new_placeholder()
        self.base_env, self.withheld = isolate_environment(plan.key, plan.pass_env)
        self.homes: Path | None = None  # the agents' HOMEs, one per task, once the proxy runs
        self.record: AgentRunRecord | None = None
        self.status = "running"
        self.proxy = Proxy(
            ProxySettings(
                mode=plan.mode,
                upstream=plan.upstream,
                port=plan.port,
                runs_dir=plan.runs_dir,
                run_id=plan.run_id,
                agent=plan.wiring.name,
                record_paths=plan.wiring.record_paths,
                key_handover=plan.key.handover(self.placeholder, plan.upstream) if plan.key else None,
                log_path=self.path / "proxy.log",
            ),
            env=self.base_env,
            on_unexpected_exit=self.runner.stop_current,
        )

    def start(self) -> None:
        self.plan.runs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.path.mkdir(mode=0o700)
        except FileExistsError:
            raise UserError(f"run {self.plan.run_id} already exists in {self.plan.runs_dir}") from None
        try:
            self.proxy.start()
        except BaseException:  # a failed start, or Ctrl-C while waiting for it
            self.proxy.stop()
            # Nothing was recorded: leave nothing behind that looks like a run.
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        plan = self.plan
        self.homes = plan.home or Path(tempfile.mkdtemp(prefix="agentcap-home-"))
        self.record = AgentRunRecord(
            self.path,
            {
                "run_id": plan.run_id,
                "agent": plan.wiring.name,
                "command": list(plan.command),
                "model": plan.model or None,
                "upstream": plan.upstream,
                "mode": plan.mode,
                "proxy": self.proxy.url,
                "key_variable": plan.key.variable if plan.key else None,
                "withheld_env": self.withheld,
            },
            time.time(),
        )

    def tasks(self) -> str:
        """Run every task; returns the run's status."""
        for task in self.plan.tasks:
            status = self.task(task)
            if status in ("interrupted", "proxy_failed"):
                return status
        return "complete"

    def task(self, task: Task) -> str:
        assert self.record is not None and self.homes is not None
        home = self.homes / (task.task_id or "session")
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        values = self.template_values(task, home)
        write_config_files(self.plan.wiring, home, values)
        env = self.agent_env(task, home, values)
        entry = self.record.start_task(task.task_id, task.prompts)
        started = time.time()
        status = "complete"
        try:
            for index, prompt in enumerate(task.prompts or (None,)):
                outcome = self.turn(task, index, prompt, env, values, entry)
                if outcome.status in ENDS_TASK:
                    status = outcome.status
                    break
        except KeyboardInterrupt:
            status = "interrupted"
        with sigint_ignored():
            traces = self.collect_traces(env, started)
            self.record.finish_task(entry, status, traces)
        return status

    def turn(
        self,
        task: Task,
        index: int,
        prompt: str | None,
        env: dict[str, str],
        values: Mapping[str, str],
        entry: dict[str, Any],
    ) -> TurnOutcome:
        assert self.record is not None
        turn = None if prompt is None else index + 1
        if task.task_id is not None:
            self.proxy.set_context(run=self.plan.run_id, task=task.task_id, turn=turn)
        invocation = turn_command(self.plan.wiring, self.plan.command, prompt, index > 0, values)
        output = None
        if prompt is not None:
            sessions = self.path / SESSIONS_DIR
            sessions.mkdir(exist_ok=True)
            stem = f"{task.task_id}_turn_{turn:02d}"
            output = (sessions / f"{stem}.out", sessions / f"{stem}.err")
            env = {**env, "AGENTCAP_TURN": str(turn), "AGENTCAP_PROMPT": prompt}
        outcome = self.runner.run(
            invocation.argv, env, output=output, stdin=invocation.stdin, timeout=self.plan.timeout
        )
        if self.proxy.exit_code is not None:  # the agent was stopped for it, or failed without it
            outcome = replace(outcome, status="proxy_failed")
        if output is not None and outcome.error:
            output[1].write_text(outcome.error + "\n")
        self.record.add_turn(
            entry,
            {
                "turn": turn,
                "prompt": prompt,
                "argv": invocation.argv,
                "status": outcome.status,
                "exit_code": outcome.exit_code,
                "started_at": utc_iso(outcome.started_at),
                "duration_s": round(outcome.ended_at - outcome.started_at, 3),
                "stdout": None if output is None else output[0].relative_to(self.path).as_posix(),
                "stderr": None if output is None else output[1].relative_to(self.path).as_posix(),
            },
        )
        if turn is not None:
            turns = f"turn {turn}/{len(task.prompts)}"
            click.echo(
                f"  {task.task_id} {turns}  {outcome.status}  {outcome.ended_at - outcome.started_at:.1f} s",
                err=True,
            )
        return outcome

    def template_values(self, task: Task, home: Path) -> dict[str, str]:
        base = self.proxy.url if self.plan.mode == "reverse" else self.plan.upstream
        return {
            "base": base,
            "openai_base": base + "/v1",
            "key": self.placeholder,
            "model": self.plan.model,
            "home": str(home),
            "task": task.task_id or "",
        }

    def agent_env(self, task: Task, home: Path, values: Mapping[str, str]) -> dict[str, str]:
        real_home = Path(self.base_env.get("HOME") or Path.home())
        env = {
            **self.base_env,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            # Shared caches: agents that install packages at start-up do it once, not once per task.
            "XDG_CACHE_HOME": self.base_env.get("XDG_CACHE_HOME") or str(real_home / ".cache"),
            "AGENTCAP_RUN_ID": self.plan.run_id,
            "AGENTCAP_PROXY_URL": self.proxy.url,
            **render(dict(self.plan.wiring.env), values),
        }
        if task.task_id is not None:
            env["AGENTCAP_TASK"] = task.task_id
        if self.plan.mode == "regular":
            ca = str(MITMPROXY_CA.expanduser())
            for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
                env[name] = self.proxy.url
            env.update(dict.fromkeys(CA_VARIABLES, ca))
        else:
            # A proxy from the environment must not sit between the agent and ours.
            loopback = ",".join(
                filter(None, [env.get("NO_PROXY") or env.get("no_proxy"), "127.0.0.1", "localhost"])
            )
            env["NO_PROXY"] = env["no_proxy"] = loopback
        return env

    def collect_traces(self, env: Mapping[str, str], started: float) -> list[str]:
        name = self.plan.wiring.traces
        if name is None:
            return []
        sources = [root for root in get_format(name).default_roots(env) if root.exists()]
        if not sources:
            return []
        run = RunDir(self.plan.run_id, self.path, self.plan.wiring.name)
        window = Window(datetime.fromtimestamp(started, UTC), datetime.now(UTC))
        try:
            written = collect_traces(run, name, sources, window=window, warn=warn)
        except (OSError, sqlite3.Error, UserError) as error:
            warn(f"could not collect the {name} sessions: {error}")
            return []
        return sorted(path.relative_to(self.path).as_posix() for path in written)

    def finish(self, status: str) -> None:
        """Clear the context, stop the proxy (it finishes run.json), close our record with the final status."""
        with sigint_ignored():
            if self.proxy.exit_code is None and self.proxy.port is not None:
                with contextlib.suppress(AbortRun):  # stopping anyway
                    self.proxy.set_context(task=None, turn=None)
            if self.proxy.exit_code is not None and status != "interrupted":
                status = "proxy_failed"
            self.proxy.stop()
            if self.record is not None:
                self.record.finish(status, time.time())
            self.remove_homes()
        self.status = status

    def unsuccessful_turns(self) -> int:
        """Turns that failed or timed out (the run itself may be complete)."""
        tasks = self.record.tasks if self.record else []
        return sum(turn["status"] in ("failed", "timeout") for task in tasks for turn in task["turns"])

    def remove_homes(self) -> None:
        if self.plan.home is None and self.homes is not None:
            shutil.rmtree(self.homes, ignore_errors=True)


def execute(plan: RunPlan) -> Run:
    run = Run(plan)
    run.start()
    status, error = "failed", None
    try:
        print_banner(run)
        status = run.tasks()
    except KeyboardInterrupt:
        status = "interrupted"
    except AbortRun as raised:
        error = raised
    finally:
        run.finish(status)  # also on an unexpected error: the proxy stops, the record is closed
    print_summary(run)
    if run.status == "proxy_failed":
        raise AbortRun(
            f"the capture proxy exited unexpectedly ({run.proxy.reason or 'no message'}); "
            f"the calls it recorded are kept in {run.path}; see {run.path / 'proxy.log'}"
        )
    if error is not None:
        raise error
    return run


# ---------------------------------------------------------------- what is printed
def print_banner(run: Run) -> None:
    plan = run.plan
    proxy_note = f"{run.proxy.url} → {plan.upstream} ({plan.mode})"
    click.echo(f"agentcap run {plan.run_id}: {plan.wiring.name} through {proxy_note}", err=True)
    if plan.key is not None:
        click.echo(f"  {plan.key.variable} stays with the proxy; the agent holds a placeholder", err=True)
    if run.withheld:
        names = ", ".join(run.withheld)
        click.echo(f"  withheld from the agent: {names} (--pass-env NAME to pass one)", err=True)


def print_summary(run: Run) -> None:
    """One screen: tasks and turns, calls and tokens, traces, where the run is, what to run next."""
    plan, record = run.plan, run.record
    assert record is not None
    turns = [turn for task in record.tasks for turn in task["turns"]]
    outcomes = ", ".join(
        f"{count} {name}" for name, count in Counter(turn["status"] for turn in turns).items()
    )
    traces = sum(len(task["traces"]) for task in record.tasks)
    recorded = RunDir.load(run.path)
    summary = summarize_run(recorded)  # failed calls by the one rule `ls` and `inspect` count by
    lines = [
        f"agentcap run {plan.run_id}: {run.status}",
        f"  tasks   {len(record.tasks)}, turns {len(turns)}: {outcomes or 'none'}",
        f"  calls   {summary.calls} recorded ({summary.failed} failed){token_totals(recorded)}",
        f"  traces  {traces} file(s) in traces/"
        if plan.wiring.traces
        else "  traces  none (not a format we read)",
        f"  run     {run.path}  (agent-run.json, sessions/, proxy.log)",
    ]
    unsuccessful = [turn for turn in turns if turn["status"] in ("failed", "timeout")]
    if unsuccessful:
        lines.append(f"  {len(unsuccessful)} turn(s) failed or timed out: see {unsuccessful[0]['stderr']}")
    if run.status == "interrupted":
        lines.append("  stopped by Ctrl-C: the agent was stopped; every completed call is kept")
    lines += [f"next:   agentcap inspect {run.path}", f"        agentcap export {run.path}"]
    click.echo("\n".join(lines), err=True)


def token_totals(run: RunDir) -> str:
    usage = totals_of(run_facts(run, warn=lambda _message: None), None).usage  # as `agentcap stats` sums
    if usage.input_tokens is None and usage.output_tokens is None:
        return ""
    return f"; tokens {usage.input_tokens or 0} in, {usage.output_tokens or 0} out"
