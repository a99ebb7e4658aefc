"""The dashboard in a real browser: Debian's chromium, headless, against a running cluster.

Chromium loads a follower's dashboard with a virtual-time budget (so the
page's JavaScript runs its polls), and dumps the DOM it rendered; the test
reads that DOM. Screenshots of the overview and of a job's page are kept in
``tests/artifacts/`` (ignored by git) and their paths printed.

Chromium must be installed (``apt-get install chromium``; ``.ci/run`` does it):
without it this test fails, it does not skip.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import MakeCluster
from helpers import eventually, ordo_node_program

pytestmark = pytest.mark.cluster

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("ORDO_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


# --- reading what the browser rendered --------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def walk(self) -> list[Element]:
        found = [self]
        for c in self.children:
            if isinstance(c, Element):
                found += c.walk()
        return found


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


class Page:
    """The DOM chromium dumped, with the lookups the assertions need."""

    def __init__(self, html: str) -> None:
        tree = _Tree()
        tree.feed(html)
        self.elements = tree.root.walk()

    def by_id(self, id_: str) -> Element:
        found = [e for e in self.elements if e.attrs.get("id") == id_]
        assert found, f"no element #{id_} in the page"
        return found[0]

    def text(self, id_: str) -> str:
        return " ".join(self.by_id(id_).text.split())

    def rows(self, table_id: str) -> list[Element]:
        """The body rows of a table (not its placeholder row)."""
        return [
            e
            for e in self.by_id(table_id).walk()
            if e.tag == "tr"
            and "empty" not in e.attrs.get("class", "")
            and not _in_head(e, self.by_id(table_id))
        ]

    def tags(self, tag: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag]


def _in_head(row: Element, table: Element) -> bool:
    head = next((e for e in table.walk() if e.tag == "thead"), None)
    return head is not None and row in head.walk()


def cells(row: Element) -> str:
    return " | ".join(" ".join(c.text.split()) for c in row.children if isinstance(c, Element))


# --- driving chromium ----------------------------------------------------------


def chromium(profile: Path, *args: str) -> str:
    """Run headless chromium with ``args``; return what it printed on stdout."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the dashboard test needs Debian's chromium"
            " (apt-get install -y --no-install-recommends chromium; .ci/run installs it)"
        )
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--window-size=1400,1800",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, f"chromium exited with {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


def artifact(name: str) -> Path:
    """A path in the artifacts folder, which keeps itself out of git."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Test artifacts (screenshots); never committed.\n*\n")
    return ARTIFACTS / name


# --- a worker process ------------------------------------------------------------

StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start_worker(make_cluster: MakeCluster, tmp_path: Path) -> Iterator[StartWorker]:
    """Start ``ordo-node worker`` processes; each is stopped (SIGTERM) before the clusters are."""
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(servers: str, worker_id: str, *flags: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDO_")}
        args = ["worker", "--servers", servers, "--id", worker_id, "--data-dir", str(tmp_path / worker_id)]
        with open(tmp_path / f"{worker_id}.log", "ab") as log:
            proc = subprocess.Popen(
                [*ordo_node_program(), *args, *flags], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        procs.append((worker_id, proc))
        return proc

    yield start
    for worker_id, proc in procs:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        print(
            f"===== {worker_id} =====\n" + (tmp_path / f"{worker_id}.log").read_text(errors="replace")[-4000:]
        )


# --- the test ---------------------------------------------------------------------


async def test_the_dashboard_shows_the_cluster_jobs_failures_and_a_jobs_history_in_chromium(
    make_cluster: MakeCluster, start_worker: StartWorker, tmp_path: Path
) -> None:
    # Given a cluster whose nodes serve the dashboard, and a job that succeeds,
    # one that fails (its name carries markup) and one that recurs every second
    cluster = await make_cluster(http=True)
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)
    ok = await client.submit("echo", {"msg": "hello"}, name="dash: nightly report")
    bad_name = 'dash: <img src=x onerror="document.title=1"> import'
    bad = await client.submit("shell", {"command": "echo oops; exit 3"}, name=bad_name)
    every = await client.submit(
        "echo", {"tick": 1}, name="dash: every second", cron="* * * * * *", max_runs=3
    )
    await cluster.wait_for_state(ok, "SUCCEEDED", nodes=[leader])
    await cluster.wait_for_state(bad, "FAILED", nodes=[leader])
    await cluster.wait_for_state(every, "SUCCEEDED", nodes=[leader])
    await cluster.wait_for_applied()
    follower = next(n for n in cluster.nodes if n is not leader)
    base = f"http://127.0.0.1:{cluster.http_port(follower)}/"
    profile = tmp_path / "chromium-profile"
    # and, once those jobs are done, a worker process with a tag
    start_worker(
        ",".join(n.address for n in cluster.nodes), "dash-worker", "--capacity", "2", "--tags", "gpu"
    )

    async def load(url: str) -> Page:
        page = Page(await asyncio.to_thread(chromium, profile, "--dump-dom", url))
        assert page.by_id("status") is not None
        assert page.tags("body")[0].attrs.get("data-ready") == "1", page.text("status")
        return page

    # When chromium opens a follower's dashboard
    async def overview() -> Page:
        page = await load(base)
        assert page.text("leader") == leader.id
        jobs = {r.attrs["data-job"]: cells(r) for r in page.rows("jobs")}
        assert {ok, bad, every} <= set(jobs), jobs
        assert page.rows("failures"), "no failures yet"
        assert [r.attrs["data-worker"] for r in page.rows("workers")] == ["dash-worker"]
        return page

    page = await eventually(overview, timeout=60, interval=0.5, what="the dashboard's overview")

    # Then it names this node, the leader, and every member with its role and liveness
    assert page.text("self") == follower.id
    nodes = {r.attrs["data-node"]: r for r in page.rows("nodes")}
    assert set(nodes) == {n.id for n in cluster.nodes}
    for node_id, row in nodes.items():
        assert ("leader" in row.attrs.get("class", "")) == (node_id == leader.id)
        assert "up" in cells(row)
    assert "leader" in cells(nodes[leader.id]) and "follower" in cells(nodes[follower.id])
    # and, below them, the worker: connected to the leader, idle, with its tag and its handlers
    assert "hidden" not in page.by_id("workers-block").attrs
    worker = cells(page.rows("workers")[0])
    assert worker.startswith(f"dash-worker | {leader.id} | "), worker
    assert " s ago | 0 / 2 | gpu | " in worker and "echo" in worker, worker
    assert page.text("workers-note") == "1 of 1 connected"
    # and counts jobs by state
    counts = {
        li.attrs["data-state"]: " ".join(li.text.split())
        for li in page.tags("li")
        if "data-state" in li.attrs
    }
    assert (
        counts["SUCCEEDED"] == "SUCCEEDED 2" and counts["FAILED"] == "FAILED 1" and counts["ALL"] == "all 3"
    )
    # and lists each job by name with its state
    jobs = {r.attrs["data-job"]: cells(r) for r in page.rows("jobs")}
    assert jobs[ok].startswith("dash: nightly report | SUCCEEDED | echo")
    assert jobs[bad].startswith(f"{bad_name} | FAILED | shell")
    assert jobs[every].startswith("dash: every second | SUCCEEDED | echo")
    # and shows the failure with its error text, and the recent runs
    failure = cells(page.rows("failures")[0])
    assert bad_name in failure and "FAILED" in failure and "command exited with status 3" in failure
    runs = [cells(r) for r in page.rows("runs")]
    assert len(runs) == 5 and sum("SUCCEEDED" in r for r in runs) == 4
    # and the markup in a job's name stayed text: no element was made of it
    assert page.tags("img") == []

    # When the page is opened on the recurring job
    async def detail() -> Page:
        page = await load(f"{base}#job={every}")
        assert "hidden" not in page.by_id("job-detail").attrs
        assert len(page.rows("detail-occurrences")) == 3
        return page

    page = await eventually(detail, timeout=30, interval=0.5, what="the recurring job's page")

    # Then it shows the job, its attempts, its occurrences with their fates, and its history
    assert "dash: every second" in page.text("detail-title")
    assert "* * * * * *" in page.text("detail-options")
    assert [r.attrs["data-run"].rsplit("#", 1)[1] for r in page.rows("detail-runs")] == ["1", "1", "1"]
    occurrences = [cells(r) for r in page.rows("detail-occurrences")]
    assert all("TRIGGERED" in o and "SUCCEEDED" in o for o in occurrences), occurrences
    history = " ".join(cells(r) for r in page.rows("detail-history"))
    for event in ("SCHEDULED", "TRIGGERED", "ASSIGNED", "STARTED", "SUCCEEDED"):
        assert event in history
    assert page.text("detail-history-note") == str(len(page.rows("detail-history")))

    # When the failed job's page is opened, it shows the attempt's error and output
    page = await load(f"{base}#job={bad}")
    (attempt,) = [cells(r) for r in page.rows("detail-runs")]
    assert "FAILED" in attempt and "command exited with status 3" in attempt and "oops" in attempt
    assert page.tags("img") == []

    # When the list is filtered by state, only those jobs are listed
    page = await load(f"{base}#state=FAILED")
    assert [r.attrs["data-job"] for r in page.rows("jobs")] == [bad]

    # And screenshots of the overview and the job's page are kept
    for name, url in (("dashboard-overview.png", base), ("dashboard-job.png", f"{base}#job={every}")):
        path = artifact(name)
        path.unlink(missing_ok=True)
        await asyncio.to_thread(chromium, profile, f"--screenshot={path}", url)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"screenshot: {path}")
