"""The servers of the peer benchmark: how each is started, where a chat request goes, what its body looks like and
where the intent is in its answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Body = Callable[[str], Any]
Intent = Callable[[Any], str]


def chat_body(message: str) -> Any:
    return {"message": message}


def chat_intent(answer: Any) -> str:
    return str(answer["intent"])


def v2_body(message: str) -> Any:
    """KServe v2 (Open Inference Protocol): one BYTES row."""
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 1], "data": [message]}]}


def v2_intent(answer: Any) -> str:
    (intent,) = (output["data"][0] for output in answer["outputs"] if output["name"] == "intent")
    return str(intent)


def list_body(message: str) -> Any:
    """A batchable BentoML API takes a list; each client request carries one message."""
    return {"messages": [message]}


def list_intent(answer: Any) -> str:
    return str(answer[0]["intent"])


@dataclass(frozen=True)
class Server:
    """``command`` and ``env`` are templates: ``{bin}`` is the bin folder of the server's virtual environment,
    ``{libdir}`` its interpreter's library folder, ``{host}``, ``{port}`` (HTTP, the one measured) and ``{port1}``,
    ``{port2}``... the other free ports it is given."""

    name: str
    venv: str | None  # its virtual environment's folder under --peers-dir; None: the project's own .venv
    command: tuple[str, ...]
    path: str
    body: Body = chat_body
    intent: Intent = chat_intent
    ports: int = 1
    env: dict[str, str] = field(default_factory=dict)
    model: bool = True  # False for the no-op: no intent to check
    batch_metrics: bool = False  # exposes lnserve_batch_size on /metrics
    start_timeout_s: float = 180.0

    def render(
        self, bin_dir: str, libdir: str, host: str, ports: list[int]
    ) -> tuple[list[str], dict[str, str]]:
        values = {"bin": bin_dir, "libdir": libdir, "host": host, "port": str(ports[0])}
        values |= {f"port{i}": str(port) for i, port in enumerate(ports) if i}
        return [part.format(**values) for part in self.command], {
            k: v.format(**values) for k, v in self.env.items()
        }


def _app(module: str, *extra: str) -> tuple[str, ...]:
    return (
        "{bin}/python",
        "-m",
        f"bench.peers.apps.{module}",
        "--host",
        "{host}",
        "--port",
        "{port}",
        *extra,
    )


SERVERS = [
    Server(
        "lnserve",
        None,
        (
            "{bin}/python",
            "-c",
            "from service.cli import app; app()",
            "serve",
            "--host",
            "{host}",
            "--port",
            "{port}",
        ),
        "/v1/chat",
        batch_metrics=True,
    ),
    Server("hand-written", None, _app("handwritten"), "/v1/chat"),
    Server(
        "no-op",
        None,
        ("{bin}/python", "-m", "bench.noop_app", "--host", "{host}", "--port", "{port}"),
        "/v1/chat",
        model=False,
    ),
    Server(
        "PyTriton",
        "pytriton",
        _app("pytriton_app", "--grpc-port", "{port1}", "--metrics-port", "{port2}"),
        "/v2/models/chatbot/infer",
        v2_body,
        v2_intent,
        ports=3,
        # Triton's Python stub links the system's libpython unless the interpreter's own comes first.
        env={"LD_LIBRARY_PATH": "{libdir}"},
    ),
    Server(
        "MLServer",
        "mlserver",
        ("{bin}/mlserver", "start", "bench/peers/apps/mlserver"),
        "/v2/models/chatbot/infer",
        v2_body,
        v2_intent,
        ports=3,
        env={
            "MLSERVER_HOST": "{host}",
            "MLSERVER_HTTP_PORT": "{port}",
            "MLSERVER_GRPC_PORT": "{port1}",
            "MLSERVER_METRICS_PORT": "{port2}",
        },
    ),
    Server(
        "BentoML",
        "bentoml",
        (
            "{bin}/bentoml",
            "serve",
            "bench.peers.apps.bentoml_app:Chat",
            "--host",
            "{host}",
            "--port",
            "{port}",
        ),
        "/classify",
        list_body,
        list_intent,
    ),
    Server("LitServe", "litserve", _app("litserve_app"), "/predict"),
    Server("Ray Serve", "rayserve", _app("rayserve_app"), "/"),
]
BY_NAME = {server.name: server for server in SERVERS}


def lnserve_variant(settings: str) -> Server:
    """lnserve with ``LNSERVE_*`` settings (``"LNSERVE_MAX_QUEUE_DELAY_US=0,LNSERVE_INTRA_OP_THREADS=1"``), measured as
    one more server beside the others (``--lnserve-variant``)."""
    env = dict(pair.split("=", 1) for pair in settings.split(",") if pair)
    if not env or any(not key.startswith("LNSERVE_") for key in env):
        raise ValueError(f"expected LNSERVE_NAME=VALUE[,LNSERVE_NAME=VALUE...], got {settings!r}")
    base = BY_NAME["lnserve"]
    return Server(f"lnserve {settings}", None, base.command, base.path, env=env, batch_metrics=True)
