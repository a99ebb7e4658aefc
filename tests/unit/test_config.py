"""Tests for node configuration: loading TOML files, their errors, the embedded default, and the CLI."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ordo_node.config import Config, ConfigError, Peer, default, load

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "cluster-configs").glob("node*.toml"))

# A valid config; every error case below changes one thing in it.
BASE = """\
[node]
id = "alpha"
grpc_address = "127.0.0.1:7001"
raft_address = "127.0.0.1:7101"
data_dir = "state/alpha"

[cluster]
secret = "0123456789abcdef-secret"
peers = [
  { id = "alpha", grpc_address = "127.0.0.1:7001", raft_address = "127.0.0.1:7101" },
  { id = "beta", grpc_address = "127.0.0.1:7002", raft_address = "127.0.0.1:7102" },
  { id = "gamma", grpc_address = "127.0.0.1:7003", raft_address = "127.0.0.1:7103" },
]

[executor]
capacity = 8
"""


def variant(old: str, new: str) -> str:
    """BASE with ``old`` replaced by ``new`` (``old`` must occur exactly once)."""
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


def write(tmp_path: Path, text: str, name: str = "node.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load(path)
    return str(info.value)


# --- valid files -------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_configs_load(path: Path) -> None:
    cfg = load(path)

    assert cfg.node_id == path.stem
    # The file lists all three members; this node's own entry is folded into [node].
    assert [m.id for m in cfg.members()] == [path.stem, *sorted({"node1", "node2", "node3"} - {path.stem})]
    assert len(cfg.peers) == 2
    assert cfg.data_dir == (path.parent / "data" / path.stem).resolve()
    assert cfg.data_dir.is_absolute()
    assert cfg.source == str(path)
    assert len(cfg.secret) >= 16


def test_sample_configs_cover_three_nodes() -> None:
    assert [p.stem for p in SAMPLES] == ["node1", "node2", "node3"]


def test_base_config_values(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)

    cfg = load(path)

    assert cfg == Config(
        node_id="alpha",
        grpc_address="127.0.0.1:7001",
        raft_address="127.0.0.1:7101",
        data_dir=(tmp_path / "state" / "alpha").resolve(),
        secret="0123456789abcdef-secret",
        peers=(
            Peer("beta", "127.0.0.1:7002", "127.0.0.1:7102"),
            Peer("gamma", "127.0.0.1:7003", "127.0.0.1:7103"),
        ),
        capacity=8,
        source=str(path),
        base_dir=path.resolve().parent,
    )
    assert cfg.peer_by_raft("127.0.0.1:7103") == Peer("gamma", "127.0.0.1:7003", "127.0.0.1:7103")
    assert cfg.peer_by_raft("127.0.0.1:7101") == Peer("alpha", "127.0.0.1:7001", "127.0.0.1:7101")
    assert cfg.peer_by_raft("127.0.0.1:9999") is None


def test_data_dir_is_relative_to_the_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    write(conf_dir, BASE)
    monkeypatch.chdir(tmp_path)

    assert load("conf/node.toml").data_dir == conf_dir.resolve() / "state" / "alpha"


def test_data_dir_defaults_to_data_node_id(tmp_path: Path) -> None:
    path = write(tmp_path, variant('data_dir = "state/alpha"\n', ""))

    assert load(path).data_dir == (tmp_path / "data" / "alpha").resolve()


# --- errors name the file and the key ------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("[node]\n", "bogus = 1\n[node]\n", "bogus: unknown key"),
        ('id = "alpha"\n', 'id = "alpha"\nbogus = 1\n', "node.bogus: unknown key"),
        (
            '{ id = "beta", grpc_address',
            '{ id = "beta", bogus = 1, grpc_address',
            "cluster.peers[1].bogus: unknown key",
        ),
        ("[executor]\n", "[executor]\nbogus = true\n", "executor.bogus: unknown key"),
        ('grpc_address = "127.0.0.1:7001"\n', 'grpc_address = "localhost"\n', "node.grpc_address"),
        ('grpc_address = "127.0.0.1:7001"\n', 'grpc_address = "bad host!:7001"\n', "node.grpc_address"),
        ('raft_address = "127.0.0.1:7101"\n', 'raft_address = "127.0.0.1:70000"\n', "node.raft_address"),
        ('grpc_address = "127.0.0.1:7001"\n', "grpc_address = 7001\n", "node.grpc_address"),
        ('secret = "0123456789abcdef-secret"\n', "", "cluster.secret: is required"),
        ('secret = "0123456789abcdef-secret"\n', 'secret = "too-short"\n', "cluster.secret"),
        ("capacity = 8", "capacity = -1", "executor.capacity"),
        ("capacity = 8", 'capacity = "eight"', "executor.capacity: must be int"),
        ("capacity = 8", "capacity = true", "executor.capacity: must be int"),
        ('id = "alpha"\n', 'id = "no spaces"\n', "node.id"),
        ('{ id = "gamma"', '{ id = "beta"', "cluster.peers[2].id: duplicate node id 'beta'"),
        (
            '{ id = "alpha", grpc_address = "127.0.0.1:7001"',
            '{ id = "alpha", grpc_address = "127.0.0.1:7009"',
            "cluster.peers[0]: entry for this node disagrees with [node]",
        ),
        ('raft_address = "127.0.0.1:7103"', 'raft_address = "127.0.0.1:7102"', "cluster.peers"),
    ],
    ids=[
        "unknown-top-level",
        "unknown-in-node",
        "unknown-in-peer",
        "unknown-in-executor",
        "address-without-port",
        "address-bad-host",
        "port-70000",
        "address-not-string",
        "missing-secret",
        "short-secret",
        "capacity-negative",
        "capacity-string",
        "capacity-bool",
        "bad-node-id",
        "duplicate-peer-id",
        "self-entry-disagrees",
        "address-used-twice",
    ],
)
def test_invalid_config_names_file_and_key(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = write(tmp_path, variant(old, new))

    message = load_error(path)

    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_toml_syntax_error_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, variant("[executor]\n", "[executor\n"))

    message = load_error(path)

    assert message.startswith(f"{path}: syntax error")


def test_unreadable_file_is_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"

    assert load_error(missing).startswith(f"{missing}: cannot read")


def test_non_utf8_file_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[node]\nid = "caf\xe9"\n')

    assert load_error(path) == f"{path}: not UTF-8 text"


# --- the embedded default -------------------------------------------------------


def test_default_creates_private_secret_and_reuses_it(tmp_path: Path) -> None:
    # Given: an empty data directory
    data = tmp_path / "ordo-data"

    # When: the default config is built twice
    first = default(data)
    secret_file = data / "cluster.secret"
    mode = stat.S_IMODE(secret_file.stat().st_mode)
    second = default(data)

    # Then: one secret, readable only by its owner, used by both
    assert mode == 0o600
    assert len(first.secret) >= 32
    assert first.secret == secret_file.read_text().strip() == second.secret
    assert first.data_dir == data.resolve()
    assert (first.node_id, first.peers) == ("node1", ())


def test_default_secrets_differ_per_data_dir(tmp_path: Path) -> None:
    assert default(tmp_path / "a").secret != default(tmp_path / "b").secret


# --- the CLI -------------------------------------------------------------------


def run_cli(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ordo_node", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=config.parent,
    )


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('id = "alpha"\n', 'id = "alpha"\nbogus = 1\n', "node.bogus"),
        ("[executor]\n", "[executor\n", "syntax error"),
    ],
    ids=["unknown-key", "syntax-error"],
)
def test_cli_reports_bad_config_in_one_line(tmp_path: Path, old: str, new: str, key: str) -> None:
    # Given: a bad config file
    path = write(tmp_path, variant(old, new))

    # When: a node is started with it
    proc = run_cli(path)

    # Then: exit status 2 and one line naming file and key, no traceback
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0]
    assert key in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "state").exists()


def test_cli_error_stays_one_line_when_value_has_newline(tmp_path: Path) -> None:
    path = write(tmp_path, variant('grpc_address = "127.0.0.1:7001"\n', 'grpc_address = "bad\\nhost:7001"\n'))

    proc = run_cli(path)

    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_log_format_is_text_or_json(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        '[node]\nid = "a"\ngrpc_address = "127.0.0.1:7001"\nraft_address = "127.0.0.1:7101"\n'
        'log_format = "json"\n'
        '[cluster]\nsecret = "0123456789abcdef-secret"\n'
    )
    assert load(good).log_format == "json"
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('"json"', '"xml"'))
    with pytest.raises(ConfigError, match=r"node\.log_format"):
        load(bad)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('[node]\nid = "alpha"', '[node]\nid = "alpha\\n"', "node.id: "),
        ('"127.0.0.1:7001"\nraft', '"127.0.0.1:\u00b2"\nraft', "node.grpc_address: "),
        ('"127.0.0.1:7001"\nraft', '"127.0.0.1:\u0661\u0662"\nraft', "node.grpc_address: "),
    ],
)
def test_ids_and_ports_are_checked_whole_and_in_ascii(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    # A trailing newline slipped past the id check, and '²' or Arabic-Indic digits past the port check.
    message = load_error(write(tmp_path, variant(old, new)))
    assert expected in message and "is not a valid" in message


# --- [cluster] max_clock_skew (issue 13) ------------------------------------------


def test_max_clock_skew_defaults_to_one_second_and_takes_a_value(tmp_path: Path) -> None:
    # Given the base file, and one with max_clock_skew = 0.25
    plain = load(write(tmp_path, BASE))
    tuned = load(
        write(tmp_path, variant("]\n\n[executor]", "]\nmax_clock_skew = 0.25\n\n[executor]"), "b.toml")
    )

    # Then the default is 1 s and the key is read
    assert plain.max_clock_skew == 1.0
    assert tuned.max_clock_skew == 0.25


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "cluster.max_clock_skew: must be between 0.01 and 3600 seconds, not 0.0"),
        ("-1", "cluster.max_clock_skew: must be between 0.01 and 3600 seconds, not -1.0"),
        ("7200", "cluster.max_clock_skew: must be between 0.01 and 3600 seconds, not 7200.0"),
        ("nan", "cluster.max_clock_skew: must be between 0.01 and 3600 seconds, not nan"),
        ('"1s"', "cluster.max_clock_skew: must be int or float, not '1s'"),
        ("true", "cluster.max_clock_skew: must be int or float, not True"),
    ],
    ids=["zero", "negative", "too-large", "nan", "string", "bool"],
)
def test_a_bad_max_clock_skew_names_the_key(tmp_path: Path, value: str, expected: str) -> None:
    path = write(tmp_path, variant("]\n\n[executor]", f"]\nmax_clock_skew = {value}\n\n[executor]"))

    assert load_error(path) == f"{path}: {expected}"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'grpc_address = "127.0.0.1:7001"\n',
            'grpc_adress = "127.0.0.1:7001"\n',
            "node.grpc_adress: unknown key; did you mean grpc_address?",
        ),
        ("[executor]\n", "[executr]\n", "executr: unknown key; did you mean executor?"),
        ("capacity = 8", "capacty = 8", "executor.capacty: unknown key; did you mean capacity?"),
        ('id = "alpha"\n', 'id = "alpha"\nbogus = 1\n', "node.bogus: unknown key"),
    ],
    ids=["typo-in-node", "typo-in-table-name", "typo-in-executor", "nothing-near"],
)
def test_a_typo_names_the_nearest_known_key(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = write(tmp_path, variant(old, new))

    message = load_error(path)

    assert message == f"{path}: {expected}"
