"""A secured cluster: mutual TLS on the gRPC port, bearer tokens, PeerService for members only."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import MakeCluster
from helpers import Cluster, eventually, grpcurl_program, ordo_node_program

from ordo_node.auth import PEER_KEY, peer_credential
from ordo_node.channels import client_credentials, open_channel
from ordo_node.client import Client
from ordo_node.pb import internal_pb2, internal_pb2_grpc, ordo_pb2
from ordo_node.tls import Issued, make_certificates
from ordo_node.tools.localcluster import DEMO_SECRET

pytestmark = pytest.mark.cluster

ADMIN = "admin-token-0123456789abcdef"
READER = "read-token-0123456789abcdef"


def secure_settings(certs: Path, *, mutual: bool) -> dict[str, dict[str, Any]]:
    """[tls] and [auth] for every node; each node uses its own certificate (relative to the cluster root)."""
    return {
        "auth": {
            "tokens": [
                {"name": "ops", "role": "admin", "token": ADMIN},
                {"name": "dashboard", "role": "read", "token": READER},
            ]
        },
        "tls": {"ca_file": str(certs / "ca.pem"), "require_client_cert": mutual},
    }


async def secured_cluster(
    make_cluster: MakeCluster, tmp_path: Path, *, mutual: bool
) -> tuple[Cluster, Issued]:
    issued = make_certificates(
        tmp_path / "certs", ["node1", "node2", "node3"], ["127.0.0.1"], clients=["client"]
    )
    per_node = {
        name: {"tls": {"cert_file": str(cert), "key_file": str(key)}}
        for name, (cert, key) in issued.certs.items()
        if name != "client"
    }
    client_cert, client_key = issued.certs["client"]
    options: dict[str, Any] = {"token": ADMIN, "ca_file": issued.ca_file}
    if mutual:
        options |= {"cert_file": client_cert, "key_file": client_key}
    cluster = await make_cluster(
        settings=secure_settings(tmp_path / "certs", mutual=mutual),
        node_settings=per_node,
        client_options=options,
        http=True,
    )
    return cluster, issued


async def succeeded(cluster: Cluster, ids: list[str]) -> dict[str, ordo_pb2.Job]:
    """Wait until every job SUCCEEDED on every live node; the jobs as the first live node sees them."""
    jobs = {}
    for job_id in ids:
        on_nodes = await cluster.wait_for_state(job_id, "SUCCEEDED")
        jobs[job_id] = next(iter(on_nodes.values()))
    return jobs


def http_get(url: str, ca_file: Path | None, token: str = "") -> tuple[int, dict[str, str], bytes]:
    """GET ``url`` (HTTPS trusting ``ca_file``), without following redirects: status, headers, body."""
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPSHandler(context=context), NoRedirect()]
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with opener.open(request, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


async def code_of(call: Any) -> grpc.StatusCode:
    """The status code a call ends with (OK when it succeeds)."""
    try:
        await call
    except grpc.aio.AioRpcError as e:
        return e.code()
    return grpc.StatusCode.OK


async def test_mutual_tls_cluster_with_tokens(make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster, issued = await secured_cluster(make_cluster, tmp_path, mutual=True)
    address = cluster.nodes[0].address
    client_cert, client_key = issued.certs["client"]
    admin = cluster.client(cluster.nodes[0])

    # Jobs run end to end; the leader reaches the executors' PeerService over mutual TLS
    # with its member credential, so runs land on more than one node.
    ids = [await admin.submit("echo", {"i": i}) for i in range(12)]
    jobs = await succeeded(cluster, ids)
    ran_on = {job.runs[-1].node_id for job in jobs.values()}
    assert len(ran_on) >= 2, ran_on
    status = await admin.cluster()
    assert {n.node_id for n in status.nodes if n.reachable} == {"node1", "node2", "node3"}

    tls = {"ca_file": issued.ca_file, "cert_file": client_cert, "key_file": client_key, "timeout": 3.0}
    async with (
        Client([address], token=READER, **tls) as reader,
        Client([address], token="not-a-configured-token", **tls) as stranger,
        Client([address], token="", **tls) as anonymous,
    ):
        # read-only token: reads and watching are allowed, changes are not
        job = await reader.get(ids[0])
        assert job.state == ordo_pb2.JOB_STATE_SUCCEEDED
        assert len((await reader.list_jobs(page_size=100)).jobs) == 12
        assert (await reader.cluster()).leader_id
        denied = await code_of(reader.submit("echo", {}))
        assert denied == grpc.StatusCode.PERMISSION_DENIED
        assert await code_of(reader.cancel(ids[0])) == grpc.StatusCode.PERMISSION_DENIED
        assert await code_of(reader.remove_node("node3")) == grpc.StatusCode.PERMISSION_DENIED
        seen = []
        async for event in reader.watch(ids[0], after_seq=1):  # replayed: it ran already
            seen.append(event)
            if event.type == ordo_pb2.EVENT_TYPE_SUCCEEDED:
                break
        assert seen

        # no token, or a wrong one: nothing at all
        assert await code_of(anonymous.get(ids[0])) == grpc.StatusCode.UNAUTHENTICATED
        assert await code_of(stranger.get(ids[0])) == grpc.StatusCode.UNAUTHENTICATED
        assert await code_of(stranger.submit("echo", {})) == grpc.StatusCode.UNAUTHENTICATED
        # a large request is refused without being read (the node does not buffer it first)
        big = {"blob": "x" * 8_000_000}
        assert await code_of(anonymous.submit("echo", big)) == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in anonymous.watch(ids[0]):
                pass
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "Bearer" in (refused.value.details() or "")

    # Without a client certificate, or without TLS, the handshake fails: nothing gets through.
    async with (
        Client([address], token=ADMIN, ca_file=issued.ca_file, timeout=2.0) as no_cert,
        Client([address], token=ADMIN, timeout=2.0) as plaintext,
    ):
        assert await code_of(no_cert.get(ids[0])) == grpc.StatusCode.UNAVAILABLE
        assert await code_of(plaintext.get(ids[0])) == grpc.StatusCode.UNAVAILABLE

    # PeerService: only members, with the cluster secret, even with an admin token.
    creds = client_credentials(issued.ca_file, client_cert, client_key)
    async with open_channel(address, creds) as channel:
        peer = internal_pb2_grpc.PeerServiceStub(channel)
        request = internal_pb2.ExecutorStatusRequest()
        auth = ("authorization", f"Bearer {ADMIN}")
        assert (
            await code_of(peer.GetExecutorStatus(request, metadata=[auth])) == grpc.StatusCode.UNAUTHENTICATED
        )
        forged = peer_credential("some-other-cluster-secret", "node2")
        bad = [(PEER_KEY, forged)]
        assert await code_of(peer.GetExecutorStatus(request, metadata=bad)) == grpc.StatusCode.UNAUTHENTICATED
        outsider = [(PEER_KEY, peer_credential(DEMO_SECRET, "node9"))]
        code = await code_of(peer.GetExecutorStatus(request, metadata=outsider))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        member = [(PEER_KEY, peer_credential(DEMO_SECRET, "node2"))]
        reply = await peer.GetExecutorStatus(request, metadata=member)
        assert reply.node_id == "node1"

    # grpcurl, an outside client, through reflection over mutual TLS with a token
    tls_args = ["-cacert", str(issued.ca_file), "-cert", str(client_cert), "-key", str(client_key)]
    body = ["-d", json.dumps({"jobId": ids[0]}), address, "ordo.v1.JobService/GetJob"]
    out = await asyncio.to_thread(
        subprocess.run,
        [grpcurl_program(), *tls_args, "-H", f"authorization: Bearer {READER}", *body],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "JOB_STATE_SUCCEEDED"
    out = await asyncio.to_thread(
        subprocess.run,
        [grpcurl_program(), *tls_args, *body],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode != 0 and "Unauthenticated" in out.stderr, out.stderr

    # The command line takes the same settings from flags
    flags = ["--address", address, "--ca-file", str(issued.ca_file)]
    flags += ["--cert-file", str(client_cert), "--key-file", str(client_key)]
    ok = await asyncio.to_thread(
        subprocess.run, [*ordo_node_program(), "get", ids[0], *flags, "--token", READER, "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["state"] == "JOB_STATE_SUCCEEDED"
    refused_cli = await asyncio.to_thread(
        subprocess.run, [*ordo_node_program(), "submit", "echo", *flags, "--token", READER],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused_cli.returncode == 1
    assert refused_cli.stderr.startswith("ordo-node: PERMISSION_DENIED: token 'dashboard' is read-only")

    # The dashboard and metrics port: HTTPS with the node's certificate, any configured token to read.
    site = f"https://127.0.0.1:{cluster.http_port('node2')}"
    status_code, _, body = await asyncio.to_thread(http_get, f"{site}/api/cluster", issued.ca_file, READER)
    assert status_code == 200 and json.loads(body)["leader_id"] == status.leader_id
    status_code, _, body = await asyncio.to_thread(http_get, f"{site}/metrics", issued.ca_file, ADMIN)
    assert status_code == 200 and b"ordo_raft_term" in body
    for token in ("", "not-a-configured-token"):
        status_code, _, _ = await asyncio.to_thread(http_get, f"{site}/api/cluster", issued.ca_file, token)
        assert status_code == 401
    status_code, headers, _ = await asyncio.to_thread(http_get, f"{site}/?token={READER}", issued.ca_file)
    assert status_code == 303
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        await asyncio.to_thread(http_get, site.replace("https:", "http:") + "/api/cluster", None, READER)

    # The container health check: address and TLS files from the node's config; plaintext gets nowhere.
    health = [*ordo_node_program(), "health"]
    ok = await asyncio.to_thread(
        subprocess.run, [*health, "--config", str(cluster.nodes[0].config_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0 and ok.stdout.strip() == f"{address}: SERVING", ok.stderr
    plain = await asyncio.to_thread(
        subprocess.run, [*health, "--address", address], capture_output=True, text=True, timeout=60
    )
    assert plain.returncode == 1 and "UNAVAILABLE" in plain.stderr


async def test_tls_cluster_survives_a_leader_kill(make_cluster: MakeCluster, tmp_path: Path) -> None:
    """Server-side TLS only (no client certificates): the cluster fails over and runs jobs after it."""
    cluster, _ = await secured_cluster(make_cluster, tmp_path, mutual=False)
    leader = await cluster.wait_for_leader()
    leader.kill()
    await cluster.wait_for_leader(exclude=leader.id)
    survivor = next(n for n in cluster.nodes if n.alive)
    client = cluster.client(survivor)
    ids = [await client.submit("echo", {"i": i}) for i in range(4)]
    jobs = await succeeded(cluster, ids)
    assert all(job.runs[-1].node_id != leader.id for job in jobs.values())


async def test_peer_service_refuses_strangers_without_tls(cluster: Cluster) -> None:
    """Even an open cluster (no tokens, no TLS) keeps PeerService for its members."""
    async with grpc.aio.insecure_channel(cluster.nodes[1].address) as channel:
        peer = internal_pb2_grpc.PeerServiceStub(channel)
        assign = internal_pb2.AssignRequest()
        assert await code_of(peer.Assign(assign)) == grpc.StatusCode.UNAUTHENTICATED
    # ...while the leader's own calls get through: jobs run on every node.
    client = cluster.client(cluster.nodes[0])
    ids = [await client.submit("echo", {"i": i}) for i in range(12)]
    jobs = await succeeded(cluster, ids)
    assert len({job.runs[-1].node_id for job in jobs.values()}) >= 2


async def test_worker_connects_with_its_client_certificate_as_itself_only(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    # Given a mutual-TLS cluster with tokens whose [auth] lets certificates named wk-* be workers
    issued = make_certificates(
        tmp_path / "certs", ["node1", "node2", "node3"], ["127.0.0.1"], clients=["client", "wk-1", "other-1"]
    )
    settings = secure_settings(tmp_path / "certs", mutual=True)
    settings["auth"]["worker_certificates"] = ["wk-*"]
    per_node = {
        name: {"tls": {"cert_file": str(cert), "key_file": str(key)}}
        for name, (cert, key) in issued.certs.items()
        if name.startswith("node")
    }
    client_cert, client_key = issued.certs["client"]
    options = {"token": ADMIN, "ca_file": issued.ca_file, "cert_file": client_cert, "key_file": client_key}
    cluster = await make_cluster(
        settings=settings, node_settings=per_node, client_options=options, capacity=0
    )

    def with_cert(worker_id: str, name: str) -> None:
        cert, key = issued.certs[name]
        cluster.start_worker(
            worker_id,
            "--ca-file",
            str(issued.ca_file),
            "--cert-file",
            str(cert),
            "--key-file",
            str(key),
            capacity=2,
        )

    # When workers connect with certificates and no token: as the certificate's own name, as
    # another worker's name, and with a certificate no pattern allows
    with_cert("wk-1", "wk-1")
    with_cert("wk-2", "wk-1")
    with_cert("other-1", "other-1")

    # Then the first connects and runs jobs
    await cluster.wait_for_workers("wk-1")
    client = cluster.client(cluster.nodes[0])
    ids = [await client.submit("echo", {"n": i}) for i in range(3)]
    jobs = await succeeded(cluster, ids)
    assert {r.node_id for job in jobs.values() for r in job.runs} == {"wk-1"}
    # and the others are refused, each saying why
    for wid, why in (("wk-2", "the certificate is for 'wk-1', not 'wk-2'"), ("other-1", "matches no")):

        async def refused(wid: str = wid, why: str = why) -> bool:
            assert why in cluster.workers[wid].log_text()
            return True

        await eventually(refused, timeout=20, what=f"{wid} refused")
    status = await cluster.status(cluster.nodes[0])
    assert {w.worker_id for w in status.workers} == {"wk-1"}
