"""Benchmark: the bundled portal alone, over real HTTP, as ``hocba portal serve`` runs it.

Takes a home kept by ``bench/province.py --home DIR`` (its embedded PostgreSQL, issued
records, school seals), drops the portal's schema (``province_portal``), prepares every
school's transactions beforehand (registration, one submission per package, one query per
submission: the client's cost is not measured), starts ``HOCBA/bin/hocba portal serve``
(``--workers N`` when given; ``--hocba`` points at another worktree's entry point for a
baseline), registers the seals, then sends the submissions from two client threads and
the queries, and reports the CPU seconds of the portal's whole process tree (supervisor
and serving processes, psutil) per record, and records per second of wall time.

``--in-process``: no server and no HTTP; the same transactions go to the portal's
``handle()`` in this process (built as ``hocba portal serve`` builds it,
:func:`hocba.cli.portal_factory`), and the figure is this process's CPU time per record
(the portal's Python only, not PostgreSQL's): steadier than the HTTP figure, where two
serving processes and the client threads share the cores.

Run: ``.venv/bin/python bench/portal_http.py --home /tmp/province --workers 2``
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from province import PASS, _cpu_of  # the sibling script (bench/ is on sys.path)
from sqlalchemy import text

PATH = "/hocba/v1/giao-dich"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=None, help="hocba portal serve --workers")
    ap.add_argument("--hocba", type=Path, default=Path(sys.executable).parent / "hocba")
    ap.add_argument("--label", default="")
    ap.add_argument("--in-process", action="store_true", help="handle() here, no HTTP")
    args = ap.parse_args()

    from hocba import db

    url = db.embedded_server_url(args.home / "pgdata", database="province")
    env = {
        **os.environ,
        "HOCBA_DATABASE_URL": url,
        "HOCBA_DB_SCHEMA": "province",
        "HOCBA_HOME": str(args.home),
        "HOCBA_KEY_PASSPHRASE": PASS,
        "HOCBA_PORTAL_PASSWORD": PASS,
    }
    os.environ.update(env)
    db.get_engine.cache_clear()
    from hocba.models import stored_xml
    from hocba.pki.backends import school_seal
    from hocba.portal.client import PortalClient
    from hocba.portal.package import package_records

    with db.get_engine().begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS province_portal CASCADE"))
    register: list[bytes] = []
    submit: list[bytes] = []
    query: list[bytes] = []
    records = 0
    nonce = args.label or uuid.uuid4().hex
    with db.session_scope() as session:
        conn = session.connection()
        year = conn.execute(text("SELECT max(name) FROM school_year")).scalar()
        for code in conn.execute(text("SELECT code FROM school ORDER BY code")).scalars():
            xmls = [
                x or b""
                for x in stored_xml.unpack(
                    conn,
                    conn.execute(
                        text(
                            "SELECT h.signed_xml FROM hoc_ba h JOIN school s ON s.id = h.school_id "
                            "WHERE s.code = :c AND h.signed_xml IS NOT NULL ORDER BY h.id"
                        ),
                        {"c": code},
                    ).scalars(),
                )
            ]
            if not xmls:
                continue
            seal = school_seal(session, code)
            client = PortalClient("http://unused", code, PASS, code, seal, nam_hoc=year)
            content = {
                "serial_number": format(seal.certificate.serial_number, "X"),
                "ngay_hieu_luc": "2024-01-01",
                "ma_kieu_chu_ky": "USB_TOKEN",
                "nha_phat_hanh": "VNPT",
            }
            register.append(json.dumps(client.envelope(3, content, str(uuid.uuid4()))).encode())
            for package in package_records(xmls, nonce=nonce):
                envelope = client.envelope(1, package.content, package.message_id)
                submit.append(json.dumps(envelope).encode())
                asked = client.envelope(2, {"messageid": package.message_id}, str(uuid.uuid4()))
                query.append(json.dumps(asked).encode())
            records += len(xmls)
    db.get_engine().dispose()

    if args.in_process:
        _in_process(register, submit, query, records, args.label)
        db.stop_embedded_server(args.home / "pgdata")
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [str(args.hocba), "portal", "serve", "--port", str(port)]
    if args.workers:
        command += ["--workers", str(args.workers)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        from hocba.up import wait_http

        wait_http(f"{base}/health", proc, "portal", 180)  # 503 until every process is up
        with httpx.Client(timeout=300) as http:
            for body in register:
                http.post(base + PATH, content=body).raise_for_status()
        cpu0, t0 = _cpu_of(proc.pid), time.perf_counter()
        todo: queue.Queue[bytes] = queue.Queue()
        for body in submit:
            todo.put(body)
        accepted: list[int] = []

        def sender() -> None:
            with httpx.Client(timeout=300) as http:
                while True:
                    try:
                        body = todo.get_nowait()
                    except queue.Empty:
                        return
                    response = http.post(base + PATH, content=body)
                    response.raise_for_status()
                    accepted.append(int(response.json()["so_tiep_nhan"]))

        threads = [threading.Thread(target=sender) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with httpx.Client(timeout=300) as http:
            for body in query:
                http.post(base + PATH, content=body).raise_for_status()
        wall, cpu = time.perf_counter() - t0, _cpu_of(proc.pid) - cpu0
        out: dict[str, Any] = {
            "label": args.label,
            "hocba": str(args.hocba),
            "workers": args.workers,
            "records": records,
            "accepted": sum(accepted),
            "transactions": len(submit),
            "portal_cpu_ms_per_record": round(1000 * cpu / records, 3),
            "wall_s": round(wall, 2),
            "records_per_s": round(records / wall, 1),
            "load": os.getloadavg(),
        }
        print(json.dumps(out))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        db.stop_embedded_server(args.home / "pgdata")


def _in_process(
    register: list[bytes], submit: list[bytes], query: list[bytes], records: int, label: str
) -> None:
    """The transactions handed to the portal's ``handle()`` in this process; prints this
    process's CPU per record of the submissions and queries."""
    from hocba.cli import portal_factory

    factory = portal_factory(PASS)
    factory.prepare()
    portal = factory().state.portal
    for body in register:
        status, answer = portal.handle(body, 3)
        assert status == 200, answer
    cpu0, t0 = time.process_time(), time.perf_counter()
    accepted = 0
    for body in submit:
        status, answer = portal.handle(body, 1)
        assert status == 200, answer
        accepted += int(answer["so_tiep_nhan"])
    for body in query:
        status, answer = portal.handle(body, 2)
        assert status == 200, answer
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    out = {
        "label": label,
        "in_process": True,
        "records": records,
        "accepted": accepted,
        "transactions": len(submit),
        "portal_cpu_ms_per_record": round(1000 * cpu / records, 3),
        "wall_s": round(wall, 2),
        "load": os.getloadavg(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
