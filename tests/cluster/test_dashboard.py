"""The dashboard in a real browser: Debian's chromium, headless, against a running cluster.

Chromium loads a follower's dashboard with a virtual-time budget (so the
page's JavaScript runs its polls), and dumps the DOM it rendered; the test
reads that DOM. Screenshots of the overview and of a job's page are kept in
``tests/artifacts/`` (ignored by git) and their paths printed.

The actions are driven through the DevTools protocol on a pipe
(``--remote-debugging-pipe``: commands on fd 3, answers on fd 4, each a JSON
message ending in a NUL byte): the test clicks the page's own buttons and
checks their effect through the gRPC API.

Chromium must be installed (``apt-get install chromium``; ``.ci/run`` does it):
without it this test fails, it does not skip.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeCluster
from helpers import eventually, ordo_node_program

from ordo_node.pb import ordo_pb2

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


class DevTools:
    """Headless chromium driven over the DevTools protocol on a pipe; one page, one session."""

    def __init__(self, profile: Path) -> None:
        if not Path(CHROMIUM).exists():
            pytest.fail(f"{CHROMIUM} is missing: the dashboard test needs Debian's chromium")
        commands_r, self._commands = os.pipe()
        self._answers, answers_w = os.pipe()

        def on_fds_3_and_4() -> None:  # in the child, before exec: chromium reads fd 3, writes fd 4
            os.dup2(commands_r, 3)
            os.dup2(answers_w, 4)

        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=on_fds_3_and_4,
        )
        os.close(commands_r)
        os.close(answers_w)
        self._ids = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        threading.Thread(target=self._read, name="devtools", daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._answers, 65536):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    with self._arrived:
                        self._replies[message["id"]] = message
                        self._arrived.notify_all()

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait (at most 30 s) for its answer."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        with self._arrived:
            if not self._arrived.wait_for(lambda: number in self._replies, timeout=30):
                raise TimeoutError(f"chromium did not answer {method}")
            reply = self._replies.pop(number)
        assert "error" not in reply, reply["error"]
        result: dict[str, Any] = reply["result"]
        return result

    def open(self, url: str) -> None:
        self.call("Page.navigate", self.session, url=url)

    def js(self, expression: str, promise: bool = False) -> Any:
        """The value of a JavaScript expression in the page (awaited, with ``promise``)."""
        reply = self.call(
            "Runtime.evaluate", self.session, expression=expression, returnByValue=True, awaitPromise=promise
        )
        assert "exceptionDetails" not in reply, reply["exceptionDetails"]
        return reply["result"].get("value")

    def screenshot(self, path: Path) -> None:
        """Save what the page shows now as a PNG."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            self.session,
            width=1400,
            height=1000,
            deviceScaleFactor=1,
            mobile=False,
        )
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", self.session)["data"]))

    def close(self) -> None:
        os.close(self._commands)  # chromium ends when its pipe closes
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self._answers)


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
    # name and type first, then the end of the id (v7 ids share their start), then the state
    assert jobs[ok].startswith(f"dash: nightly report | echo | …{ok[-8:]} | SUCCEEDED")
    assert jobs[bad].startswith(f"{bad_name} | shell | …{bad[-8:]} | FAILED")
    assert jobs[every].startswith(f"dash: every second | echo* * * * * * (UTC) | …{every[-8:]} | SUCCEEDED")
    # every time says its zone
    assert all(
        " UTC" in c.text
        for r in page.rows("jobs")
        for c in r.children
        if isinstance(c, Element) and "time" in c.attrs.get("class", "") and c.text
    )
    # and the chart of the last minutes has bars for the attempts that finished
    bars = [e for e in page.by_id("chart-outcomes").walk() if e.tag == "rect"]
    assert {b.attrs["data-outcome"] for b in bars} == {"SUCCEEDED", "FAILED"}, bars
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


ADMIN = "dash-admin-token-0123456789"
READER = "dash-read-token-0123456789"


async def test_an_admin_pauses_resumes_runs_now_and_cancels_from_a_followers_dashboard(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    # Given a cluster with tokens, and a recurring job (daily at midnight in Paris: not firing by itself)
    tokens = [
        {"name": "ops", "role": "admin", "token": ADMIN},
        {"name": "viewer", "role": "read", "token": READER},
    ]
    cluster = await make_cluster(
        settings={"auth": {"tokens": tokens}}, client_options={"token": ADMIN}, http=True
    )
    leader = await cluster.wait_for_leader()
    client = cluster.client(leader)
    daily = await client.submit(
        "echo", {"n": 1}, name="dash: daily", cron="0 0 * * *", timezone="Europe/Paris"
    )
    follower = next(n for n in cluster.nodes if n is not leader)
    await cluster.wait_for_applied()
    base = f"http://127.0.0.1:{cluster.http_port(follower)}/"
    browser = await asyncio.to_thread(DevTools, tmp_path / "chromium-actions")
    try:
        # and an admin's browser on a follower's dashboard (the token becomes a cookie)
        await asyncio.to_thread(browser.open, f"{base}?token={ADMIN}")

        async def page_shows(expression: str, what: str) -> Any:
            async def check() -> Any:
                return await asyncio.to_thread(browser.js, expression) or None

            return await eventually(check, timeout=30, interval=0.2, what=what)

        async def click(selector: str) -> str:
            """Click the page's button and wait for the result line; its text."""
            await page_shows(f"!!document.querySelector({selector!r})", f"the button {selector}")
            await asyncio.to_thread(
                browser.js, "document.getElementById('action-result').dataset.outcome = ''"
            )
            await asyncio.to_thread(browser.js, f"document.querySelector({selector!r}).click()")
            return str(
                await page_shows(
                    "(r => ['ok', 'error'].includes(r.dataset.outcome)"
                    " ? `${r.dataset.outcome}: ${r.textContent}` : '')"
                    "(document.getElementById('action-result'))",
                    "the action's result on the page",
                )
            )

        async def history() -> list[tuple[str, str]]:
            events = await client.history(daily)
            return [(ordo_pb2.EventType.Name(e.type).removeprefix("EVENT_TYPE_"), e.message) for e in events]

        await page_shows("document.getElementById('actor').textContent === 'ops'", "the page acting as 'ops'")
        await asyncio.to_thread(browser.open, f"{base}#job={daily}")

        # When the admin clicks pause on the job's page
        said = await click("#detail-actions [data-action=pause]")

        # Then the page says it is done, by whom; the job is paused; its history names the token
        assert said.startswith("ok: pause dash: daily") and "done by ops" in said and "PAUSED" in said, said
        assert (await client.get(daily)).state == ordo_pb2.JOB_STATE_PAUSED
        assert ("PAUSED", "paused by ops") in await history()

        # When the schedules view shows it, paused, with its spec and time zone, and resume is clicked there
        await asyncio.to_thread(browser.open, f"{base}#view=schedules")
        row = f"[data-schedule='{daily}']"
        text = await page_shows(
            f"(r => r && r.textContent)(document.querySelector({row!r}))", "the schedule's row"
        )
        assert "0 0 * * *" in text and "Europe/Paris" in text and "PAUSED" in text, text
        said = await click(f"{row} [data-action=resume]")
        assert said.startswith("ok: resume") and "SCHEDULED" in said, said

        # and then run now
        said = await click(f"{row} [data-action=run-now]")

        # Then one extra occurrence ran, its reason naming who asked, and the schedule did not move
        assert said.startswith("ok: run now") and "triggered now by ops" in said, said
        assert ("RESUMED", "resumed by ops") in await history()

        async def ran_now() -> bool:
            occurrences = (await client.occurrences(daily)).occurrences
            return any(o.reason == "triggered now by ops" for o in occurrences)

        await eventually(ran_now, timeout=30, what="the occurrence triggered now")
        job = await client.get(daily)
        assert job.next_fire_time.ToDatetime().hour in (22, 23)  # still midnight in Paris, in UTC
        await page_shows(
            f"[...document.querySelectorAll({row + ' .fates [title]'!r})]"
            ".some(b => b.title.includes('TRIGGERED (triggered now by ops)'))",
            "the new fate in the schedules view (its reason in the badge's title)",
        )
        shot = artifact("dashboard-schedules.png")
        await asyncio.to_thread(browser.screenshot, shot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"screenshot: {shot}")

        # When cancel is clicked on the job's page: once arms it, the second click acts
        await asyncio.to_thread(browser.open, f"{base}#job={daily}")
        await page_shows(
            "!!document.querySelector('#detail-actions [data-action=cancel]')", "the cancel button"
        )
        await asyncio.to_thread(
            browser.js, "document.querySelector('#detail-actions [data-action=cancel]').click()"
        )
        assert (await client.get(daily)).state != ordo_pb2.JOB_STATE_CANCELLED
        said = await click("#detail-actions [data-action=cancel]")

        # Then it is cancelled everywhere, by ops
        assert said.startswith("ok: cancel") and "CANCELLED" in said, said
        await cluster.wait_for_state(daily, "CANCELLED")
        assert any(t == "CANCELLED" and m.endswith("by ops") for t, m in await history())

        # And a read token's page offers no action, and the node refuses one all the same
        await asyncio.to_thread(browser.open, f"{base}?token={READER}")
        await page_shows(
            "document.getElementById('actor').textContent === 'viewer (read only)'", "the read-only page"
        )
        refused = await asyncio.to_thread(
            browser.js,
            f"fetch('api/jobs/{daily}/retry', {{method: 'POST', headers: {{'X-Ordo-CSRF': 'x'}}}})"
            ".then(r => r.status)",
            True,
        )
        assert refused == 403
    finally:
        await asyncio.to_thread(browser.close)
