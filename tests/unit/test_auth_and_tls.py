"""[tls] and [auth] in the config, the token rules, test certificates, and the interceptor's decisions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from test_config import BASE, load_error, write

from ordo_node.auth import PEER_KEY, READ_METHODS, AuthInterceptor, Tokens, bearer, peer_credential
from ordo_node.config import Token, load
from ordo_node.pb import ordo_pb2
from ordo_node.tls import make_certificates

SECRET = "0123456789abcdef-secret"


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    make_certificates(tmp_path / "certs", ["alpha"], ["127.0.0.1", "localhost"], clients=["cli"])
    return tmp_path / "certs"


def test_certificates_name_every_host_and_keys_are_private(certs: Path) -> None:
    cert = x509.load_pem_x509_certificate((certs / "alpha.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    ca = x509.load_pem_x509_certificate((certs / "ca.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert (certs / "alpha.key").stat().st_mode & 0o077 == 0
    assert (certs / "ca.key").stat().st_mode & 0o077 == 0
    # strict X.509 checks (Python 3.13's default, openssl -x509_strict) want key identifiers
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    strict = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-CAfile", str(certs / "ca.pem"), str(certs / "alpha.pem")],
        capture_output=True,
        text=True,
    )
    assert strict.returncode == 0, strict.stderr


def test_a_client_certificate_cannot_serve(certs: Path) -> None:
    cert = x509.load_pem_x509_certificate((certs / "cli.pem").read_bytes())
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_certs_command_never_overwrites(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "ordo_node", "certs", str(tmp_path / "c"), "--names", "n1"]
    first = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    key = (tmp_path / "c" / "n1.key").read_bytes()
    again = subprocess.run([*run, "--clients", ""], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "exists; not overwriting" in again.stderr
    assert (tmp_path / "c" / "n1.key").read_bytes() == key


def test_tls_and_auth_sections_load(tmp_path: Path, certs: Path) -> None:
    (tmp_path / "ops.token").write_text("from-a-file-0123456789\n")
    text = BASE + (
        '\n[tls]\ncert_file = "certs/alpha.pem"\nkey_file = "certs/alpha.key"\nca_file = "certs/ca.pem"\n'
        "require_client_cert = true\n"
        '\n[auth]\ntokens = [\n  { name = "ops", role = "admin", token_file = "ops.token" },\n'
        '  { name = "dash", role = "read", token = "read-only-0123456789" },\n]\n'
    )
    config = load(write(tmp_path, text))
    assert config.tls is not None
    assert config.tls.cert_file == certs.resolve() / "alpha.pem"
    assert config.tls.require_client_cert
    assert config.tokens == (
        Token("ops", "from-a-file-0123456789", "admin"),
        Token("dash", "read-only-0123456789", "read"),
    )


def test_no_sections_mean_plaintext_and_open(tmp_path: Path) -> None:
    config = load(write(tmp_path, BASE))
    assert config.tls is None and config.tokens == ()


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ('[tls]\ncert_file = "certs/alpha.pem"\nkey_file = "certs/alpha.key"\n', "tls.ca_file: is required"),
        (
            '[tls]\ncert_file = "certs/nope.pem"\nkey_file = "certs/alpha.key"\nca_file = "certs/ca.pem"\n',
            "tls.cert_file: cannot read",
        ),
        (
            '[tls]\ncert_file = "certs/alpha.key"\nkey_file = "certs/alpha.key"\nca_file = "certs/ca.pem"\n',
            "tls.cert_file: ",
        ),
        (
            '[tls]\ncert_file = "certs/alpha.pem"\nkey_file = "certs/alpha.pem"\nca_file = "certs/ca.pem"\n',
            "tls.key_file: ",
        ),
        (
            '[tls]\ncert_file = "certs/alpha.pem"\nkey_file = "certs/alpha.key"\nca_file = "certs/ca.pem"\n'
            'require_client_cert = "yes"\n',
            "tls.require_client_cert: must be bool",
        ),
        ('[tls]\ncertfile = "x"\n', "tls.certfile: unknown key; did you mean cert_file?"),
        (
            '[auth]\ntokens = [{ name = "a", role = "root", token = "{T}" }]\n',
            "auth.tokens[0].role",
        ),
        ('[auth]\ntokens = [{ name = "a", role = "read", token = "short" }]\n', "auth.tokens[0].token"),
        ('[auth]\ntokens = [{ name = "a", role = "read" }]\n', "auth.tokens[0]: give token or token_file"),
        (
            '[auth]\ntokens = [{ name = "a", role = "read", token = "{T}", token_file = "t" }]\n',
            "auth.tokens[0]: give token or token_file",
        ),
        (
            '[auth]\ntokens = [{ name = "a", role = "read", token_file = "missing" }]\n',
            "auth.tokens[0].token_file",
        ),
        (
            '[auth]\ntokens = [{ name = "a", role = "read", token = "{T}" },'
            ' { name = "b", role = "admin", token = "{T}" }]\n',
            "auth.tokens[1].token: the same token is given twice",
        ),
        (
            '[auth]\ntokens = [{ name = "a", role = "read", token = "{T}", extra = 1 }]\n',
            "extra",
        ),
        ("[auth]\nusers = []\n", "auth.users: unknown key"),
    ],
)
def test_bad_security_sections_name_file_and_key(
    tmp_path: Path, certs: Path, section: str, expected: str
) -> None:
    path = write(tmp_path, BASE + "\n" + section.replace("{T}", "0123456789abcdefg"))
    message = load_error(path)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_cli_refuses_bad_tls_config_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + '\n[tls]\ncert_file = "a.pem"\nkey_file = "a.key"\nca_file = "ca.pem"\n')
    out = subprocess.run(
        [sys.executable, "-m", "ordo_node", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "tls.cert_file: cannot read" in lines[0], out.stderr


def test_bearer_reads_only_the_authorization_entry() -> None:
    assert bearer([("authorization", "Bearer abc")]) == "abc"
    assert bearer([("authorization", "bearer  abc ")]) == "abc"
    assert bearer([("authorization", "Basic abc")]) is None
    assert bearer([("x-token", "Bearer abc")]) is None
    assert bearer(None) is None


def interceptor(*tokens: Token) -> AuthInterceptor:
    return AuthInterceptor(Tokens(tokens), SECRET, lambda node_id: node_id in ("alpha", "beta"))


ADMIN = Token("ops", "admin-0123456789abcdef", "admin")
READER = Token("dash", "read-0123456789abcdef", "read")


def public_methods() -> list[str]:
    return [
        f"/{service.full_name}/{method.name}"
        for service in ordo_pb2.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


def test_every_public_method_is_classified() -> None:
    methods = public_methods()
    assert set(methods) >= READ_METHODS
    # every method that changes something is outside READ_METHODS
    changing = {
        m
        for m in methods
        if m.rsplit("/", 1)[1].startswith(
            ("Submit", "Cancel", "Retry", "Pause", "Resume", "Trigger", "Backfill")
        )
    }
    changing |= {"/ordo.v1.ClusterService/AddNode", "/ordo.v1.ClusterService/RemoveNode"}
    assert changing.isdisjoint(READ_METHODS)
    assert set(methods) == READ_METHODS | changing


def test_roles_decide_each_public_method() -> None:
    guard = interceptor(ADMIN, READER)
    for method in public_methods():
        assert guard.refusal(method, [("authorization", f"Bearer {ADMIN.token}")]) is None
        as_reader = guard.refusal(method, [("authorization", f"Bearer {READER.token}")])
        if method in READ_METHODS:
            assert as_reader is None
        else:
            assert as_reader is not None and as_reader[0] == grpc.StatusCode.PERMISSION_DENIED
        for metadata in ([], [("authorization", "Bearer wrong-0123456789abcdef")]):
            refused = guard.refusal(method, metadata)
            assert refused is not None and refused[0] == grpc.StatusCode.UNAUTHENTICATED


def test_no_tokens_leave_the_public_api_open_but_not_peer_service() -> None:
    guard = interceptor()
    assert guard.refusal("/ordo.v1.JobService/SubmitJob", []) is None
    assert guard.refusal("/grpc.health.v1.Health/Check", []) is None
    refused = guard.refusal("/ordo.v1.PeerService/Assign", [])
    assert refused is not None and refused[0] == grpc.StatusCode.UNAUTHENTICATED


def test_health_and_reflection_stay_open_with_tokens() -> None:
    guard = interceptor(ADMIN)
    assert guard.refusal("/grpc.health.v1.Health/Check", []) is None
    assert guard.refusal("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", []) is None


def test_peer_service_wants_a_member_with_the_cluster_secret() -> None:
    guard = interceptor(ADMIN)
    method = "/ordo.v1.PeerService/Assign"
    assert guard.refusal(method, [(PEER_KEY, peer_credential(SECRET, "beta"))]) is None
    stranger = guard.refusal(method, [(PEER_KEY, peer_credential(SECRET, "omega"))])
    assert stranger is not None and stranger[0] == grpc.StatusCode.PERMISSION_DENIED
    for metadata in (
        [(PEER_KEY, peer_credential("another-secret-0123456789", "beta"))],
        [(PEER_KEY, "beta")],
        [(PEER_KEY, "beta:" + "0" * 64)],
        [("authorization", f"Bearer {ADMIN.token}")],
    ):
        refused = guard.refusal(method, metadata)
        assert refused is not None and refused[0] == grpc.StatusCode.UNAUTHENTICATED, metadata


# --- workers by client certificate ([auth] worker_certificates) --------------------------------------


def test_worker_certificates_need_mutual_tls(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + '\n[auth]\nworker_certificates = ["wk-*"]\n')
    assert load_error(path) == (
        f"{path}: auth.worker_certificates: needs [tls] with require_client_cert = true"
    )
    bad = write(tmp_path, BASE + '\n[auth]\nworker_certificates = [""]\n', "bad.toml")
    assert "auth.worker_certificates[0]: must be a name or a glob pattern" in load_error(bad)


def test_a_certificate_names_the_one_worker_it_may_be() -> None:
    from ordo_node.auth import certificate_refusal

    cert = {"x509_common_name": [b"wk-1"]}
    token = [("authorization", "Bearer some-token-0123456789")]
    # Not configured, or a token presented (checked by the interceptor): nothing to say here
    assert certificate_refusal((), None, {}, "wk-1") is None
    assert certificate_refusal(("wk-*",), token, {}, "wk-9") is None
    # A certificate matching a pattern, for the worker it names: let through
    assert certificate_refusal(("gpu-*", "wk-*"), None, cert, "wk-1") is None
    # For another worker, matching no pattern, or no certificate at all: refused, saying why
    code, why = certificate_refusal(("wk-*",), None, cert, "wk-2") or (None, "")
    assert code == grpc.StatusCode.PERMISSION_DENIED and "is for 'wk-1', not 'wk-2'" in why
    code, why = certificate_refusal(("gpu-*",), None, cert, "wk-1") or (None, "")
    assert code == grpc.StatusCode.PERMISSION_DENIED and "matches no auth.worker_certificates" in why
    code, why = certificate_refusal(("wk-*",), None, {}, "wk-1") or (None, "")
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_interceptor_leaves_tokenless_worker_calls_to_the_certificate_check() -> None:
    tokens = Tokens([Token("ops", "admin-token-0123456789", "admin")])
    plain = AuthInterceptor(tokens, SECRET, lambda _: False)
    certs = AuthInterceptor(tokens, SECRET, lambda _: False, ("wk-*",))
    method = "/ordo.v1.WorkerService/Connect"
    assert plain.refusal(method, ())[0] == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[index]
    assert certs.refusal(method, ()) is None
    # and a client's call still needs its token
    assert certs.refusal("/ordo.v1.JobService/SubmitJob", ())[0] == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[index]


def test_a_worker_token_may_be_bound_to_worker_ids(tmp_path: Path) -> None:
    from ordo_node.auth import token_refusal

    path = write(
        tmp_path,
        BASE + "\n[auth]\ntokens = [{ name = 'gpu', role = 'worker', token = 'gpu-token-0123456789',"
        " workers = ['gpu-*'] }]\n",
    )
    (token,) = load(path).tokens
    assert token.workers == ("gpu-*",)
    tokens = Tokens([token, Token("any", "any-token-0123456789", "worker")])
    bound = [("authorization", "Bearer gpu-token-0123456789")]
    assert token_refusal(tokens, bound, "gpu-1") is None
    code, why = token_refusal(tokens, bound, "cpu-1") or (None, "")
    assert code == grpc.StatusCode.PERMISSION_DENIED and "token 'gpu' may act only as gpu-*" in why
    # a token without workers may be any worker
    assert token_refusal(tokens, [("authorization", "Bearer any-token-0123456789")], "cpu-1") is None
    # and only a worker token names workers
    bad = write(
        tmp_path,
        BASE + "\n[auth]\ntokens = [{ name = 'ops', role = 'admin', token = 'ops-token-0123456789',"
        " workers = ['x'] }]\n",
        "bad.toml",
    )
    assert "auth.tokens[0].workers: only a worker token names the workers it may be" in load_error(bad)
