"""``hocba up``: everything of one school or district on one machine, with one command.

Starts, in this order, and stops together (Ctrl+C, SIGTERM, or any of them dying):

1. the app database (the embedded PostgreSQL unless ``HOCBA_DATABASE_URL``), migrated;
2. a Prefect server whose own database is ``prefect`` on the same PostgreSQL server
   (``prefect_<schema>`` for an installation with another ``HOCBA_DB_SCHEMA``);
3. the work pool ``hocba`` (process type) and the deployments of ``prefect.yaml``;
4. a Prefect process worker on that pool (``--workers N`` for more);
5. the bundled province portal (``--portal``; a real deployment points
   ``HOCBA_PORTAL_URL`` at its Sở instead);
6. the dashboard.

Secrets stay in the environment of this command (``HOCBA_KEY_PASSPHRASE``,
``HOCBA_PORTAL_PASSWORD``) or in Prefect Secret blocks, never in a flow's parameters.
See ``docs/deploy.md`` for the multi-machine layout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hocba import db
from hocba.config import load_settings
from hocba.flows.prefect_server import SERVER_ENV

PROJECT_DIR = Path(__file__).resolve().parent.parent
POOL = "hocba"


@dataclass
class Ports:
    prefect: int = 4200
    portal: int = 8800
    dashboard: int = 8501
    trust: int = 8700


@dataclass
class Stack:
    """The running processes, by name, and where their logs go."""

    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait(self, name: str, url: str) -> None:
        """Until the process ``name`` answers at ``url`` (see :func:`wait_http`)."""
        wait_http(url, self.procs[name], f"{name} (nhật ký: {self.logs / (name + '.log')})")

    def dead(self) -> str | None:
        return next((n for n, p in self.procs.items() if p.poll() is not None), None)

    def stop(self) -> None:
        for proc in reversed(self.procs.values()):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def prefect_database_url(app_url: str, schema: str) -> str:
    """The Prefect server's database on the app's PostgreSQL server (made when missing),
    through asyncpg: ``prefect`` for the default schema, ``prefect_<schema>`` for another
    installation sharing the server, so their pools and schedules never mix."""
    name = "prefect" if schema == "hocba" else f"prefect_{schema}"
    url = make_url(app_url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    query = dict(url.query)
    if "sslmode" in query:  # asyncpg's name for it
        query["ssl"] = query.pop("sslmode")
    return url.set(drivername="postgresql+asyncpg", database=name, query=query).render_as_string(
        hide_password=False
    )


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 180) -> None:
    """Wait until ``url`` answers (any status below 500) while ``proc`` still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} dừng khi khởi động (mã {proc.returncode}).")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} không trả lời sau {timeout:.0f} s.")


def run(
    ports: Ports,
    workers: int = 1,
    portal: bool = True,
    dashboard: bool = True,
    say: Callable[[str], None] = print,
    ready: Callable[[Stack, dict[str, str]], None] | None = None,
) -> int:
    """Start the stack and supervise it until interrupted; returns an exit code.

    ``ready`` (tests) is called once everything answers, with the stack and the
    environment the services run in; when it returns, the stack stops."""
    settings = load_settings()
    db.upgrade(db.get_engine(), settings.schema)
    app_url = db.database_url(settings)
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    api = f"http://127.0.0.1:{ports.prefect}/api"
    env = {
        **os.environ,
        "HOCBA_DATABASE_URL": app_url,
        "HOCBA_DB_SCHEMA": settings.schema,
        "HOCBA_HOME": str(settings.home),
        "HOCBA_PROJECT_DIR": str(PROJECT_DIR),
        "PREFECT_API_URL": api,
        "PREFECT_HOME": str(settings.home / "prefect"),
        **SERVER_ENV,
    }
    if portal:  # the bundled services: the Sở portal and the test TSA / OCSP / CRL
        env.setdefault("HOCBA_PORTAL_URL", f"http://127.0.0.1:{ports.portal}")
        trust_url = f"http://127.0.0.1:{ports.trust}"
        env.setdefault("HOCBA_TSA_URL", f"{trust_url}/tsa")
        env.setdefault("HOCBA_OCSP_URL", f"{trust_url}/ocsp")
        env.setdefault("HOCBA_CRL_URL", f"{trust_url}/crl")
    stack = Stack(logs)
    stopping = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt  # also during start-up: stop waiting, stop everything

    def serve(name: str, args: list[str], port: int, health: str = "/health") -> None:
        """Start one of hocba's own servers (``hocba <args> --port <port>``), wait until it
        answers."""
        stack.start(name, [str(bin_dir / "hocba"), *args, "--port", str(port)], env)
        stack.wait(name, f"http://127.0.0.1:{port}{health}")

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        say("Khởi động máy chủ Prefect (CSDL «prefect» trên cùng PostgreSQL)…")
        stack.start(
            "prefect-server",
            [str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1"]
            + ["--port", str(ports.prefect), "--analytics-off"],
            {
                **env,
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": prefect_database_url(
                    app_url, settings.schema
                ),
            },
        )
        stack.wait("prefect-server", f"{api}/health")
        prefect = [str(bin_dir / "prefect"), "--no-prompt"]
        for args in (
            ["work-pool", "create", POOL, "--type", "process", "--overwrite"],
            ["deploy", "--all", "--prefect-file", str(PROJECT_DIR / "prefect.yaml")],
        ):
            done = subprocess.run(
                prefect + args, env=env, cwd=PROJECT_DIR, capture_output=True, text=True
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"prefect {' '.join(args)}: {done.stdout[-800:]}{done.stderr[-800:]}"
                )
        say(f"Vùng việc «{POOL}» và các triển khai trong prefect.yaml đã sẵn sàng.")
        if portal:
            serve("trust-services", ["trust-services", "serve"], ports.trust)
        for n in range(1, workers + 1):
            stack.start(
                f"worker-{n}",
                [str(bin_dir / "prefect"), "worker", "start", "--pool", POOL]
                + ["--type", "process", "--name", f"hocba-{n}"],
                env,
            )
        if portal:
            serve("portal", ["portal", "serve"], ports.portal)
        if dashboard:
            serve("dashboard", ["dashboard"], ports.dashboard, "/_stcore/health")
        say(
            f"Đã chạy: Prefect http://127.0.0.1:{ports.prefect}, {workers} máy chạy"
            + (f", cổng Sở http://127.0.0.1:{ports.portal}" if portal else "")
            + (f", bảng điều khiển http://127.0.0.1:{ports.dashboard}" if dashboard else "")
            + f". Nhật ký: {logs}. Ctrl+C để dừng tất cả."
        )
        if ready is not None:
            ready(stack, env)
            return 0
        while not stopping:
            name = stack.dead()
            if name:
                say(f"{name} đã dừng (xem {logs / (name + '.log')}); dừng tất cả.")
                return 1
            time.sleep(1)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        say("Đang dừng…")
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C waits
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            stack.stop()
        finally:
            signal.signal(signal.SIGINT, interrupt)
            signal.signal(signal.SIGTERM, previous)
