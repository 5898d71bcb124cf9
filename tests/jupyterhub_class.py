#!/usr/bin/env python3
"""A class on one server, through JupyterHub: the hub scripts/hub/setup-server.sh prepared, with its
real proxy and its real spawner (a process per student, running as that student), and four students
at the same time:
  - three run notebook 3 (the 5x5 batch analysis) through the hub: the hub's REST API starts their
    servers, then each server's sessions API and kernel websocket run the notebook's cells in order;
  - one works as a student would: Debian's chromium, headless, driven by playwright-core
    (tests/browser/student.mjs), logs in, opens notebook 3 in JupyterLab, runs all cells, and the 5x5
    figure must be on the page; its screenshot is kept in outputs/hub-class/.
It checks that every cell ran without error and drew its figures, that no student's kernel compiled a
dependency (cargo's fingerprint folders in the student's kernel folder are the shared template's plus
only the cells' own crate, and every compiled library is the template's file), and that the template
is unchanged; it reports each student's time to the first figure, peak memory and disk, in
outputs/hub-class/report.txt (docs/notebooks.md, "A class on one server").

The students are Unix accounts this test makes (mgstudent1..4, removed afterwards), so it runs as
root, as a hub with local users does, members of the group the configuration lets in, with
passwords: the browser's student logs in through PAM, as on the server. The hub is the server's
configuration as installed, with only its ports, its state folder, an API token for the test, and
quick mode (MNIST_GAN_QUICK=1) set apart.

Usage: SERVER/venv/bin/python tests/jupyterhub_class.py   (MNIST_GAN_SERVER: /opt/mnist-gan)
"""
import asyncio
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import nbformat
import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_kernels import compiled_units, libraries, rebuilt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SERVER = Path(os.environ.get("MNIST_GAN_SERVER", "/opt/mnist-gan"))
TEMPLATE = SERVER / "build" / "evcxr-template"
OUT = ROOT / "outputs" / "hub-class"
NOTEBOOK = "03-batch-analysis.ipynb"
STUDENTS = [f"mgstudent{i}" for i in range(1, 5)]
BROWSER_STUDENT = STUDENTS[-1]
PASSWORD = secrets.token_urlsafe(12)
GROUP = "mnist-gan"  # the group jupyterhub_config.py lets in
TOKEN = secrets.token_hex(32)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hub_config(scratch, port):
    """The server's configuration, with the test's authenticator, ports, state and API token."""
    path = scratch / "jupyterhub_test_config.py"
    path.write_text(f"""
load_subconfig({str(SERVER / "jupyterhub_config.py")!r})
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.JupyterHub.db_url = "sqlite:///{scratch}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{scratch}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{scratch}/proxy.pid"
c.Spawner.environment = {{"MNIST_GAN_QUICK": "1"}}
c.JupyterHub.services = [{{"name": "class-test", "api_token": {TOKEN!r}}}]
c.JupyterHub.load_roles = [{{"name": "class-test",
    "scopes": ["admin:users", "admin:servers", "access:servers"], "services": ["class-test"]}}]
""")
    return path


def make_students():
    """The students' accounts, as a teacher makes them: members of the hub's group, a password."""
    made_group = subprocess.run(["getent", "group", GROUP], capture_output=True).returncode != 0
    subprocess.run(["groupadd", "-f", GROUP], check=True)
    for name in STUDENTS:
        if subprocess.run(["id", name], capture_output=True).returncode == 0:
            remove_student(name)  # left by an earlier run: start from nothing
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", "-G", GROUP, name], check=True)
        subprocess.run(["chpasswd"], input=f"{name}:{PASSWORD}\n", text=True, check=True)
    return made_group


def remove_student(name):
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    time.sleep(0.5)
    subprocess.run(["userdel", "-r", name], capture_output=True)


class Hub:
    def __init__(self, url):
        self.url = url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {TOKEN}"

    def api(self, method, path, **kwargs):
        reply = self.http.request(method, f"{self.url}/hub/api{path}", timeout=60, **kwargs)
        if reply.status_code >= 400:
            raise RuntimeError(f"{method} /hub/api{path}: {reply.status_code} {reply.text}")
        return reply.json() if reply.text else None

    def start_server(self, name, timeout=600):
        self.api("POST", f"/users/{name}/server")
        deadline = time.time() + timeout
        while time.time() < deadline:
            server = self.api("GET", f"/users/{name}")["servers"].get("")
            if server and server.get("ready"):
                return
            time.sleep(1)
        raise RuntimeError(f"the hub did not start {name}'s server in {timeout} s")


CELL_TIMEOUT = 600  # seconds one cell may run in quick mode before the student is reported stuck


def kernel_message(msg_type, content, session):
    return json.dumps({
        "header": {"msg_id": uuid.uuid4().hex, "username": "class-test", "session": session,
                   "msg_type": msg_type, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [], "content": content})


async def run_cells(hub, name, cells, on_figure):
    """Runs `cells` in order on a new mnist-gan kernel of `name`'s server, through the hub's proxy
    (the sessions API, then the kernel's websocket); returns [(output, error name or None)].

    It talks to the kernel as nbclient and JupyterLab do: kernel_info requests until the kernel has
    answered on the shell channel and published on iopub (so no output is lost to a subscription not
    yet made), then per cell the shell's execute_reply, and iopub's outputs up to the idle status."""
    base = f"{hub.url}/user/{name}/api"
    session = hub.http.post(f"{base}/sessions", timeout=120, json={
        "path": f"mnist-gan/notebooks/{NOTEBOOK}", "type": "notebook", "name": NOTEBOOK,
        "kernel": {"name": "mnist-gan"}}).json()
    kernel = session["kernel"]["id"]

    async def connect():
        session_id = uuid.uuid4().hex
        ws_url = base.replace("http://", "ws://") + f"/kernels/{kernel}/channels?session_id={session_id}"
        socket_ = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {TOKEN}"},
                                                      connect_timeout=300, request_timeout=300),
                                          max_message_size=64 * 1024 * 1024)
        return socket_, session_id

    socket_, session_id = await connect()
    seen = []  # (channel, type) of the last messages, for the error if the kernel goes quiet

    async def receive(timeout, what):
        try:
            raw = await asyncio.wait_for(socket_.read_message(), timeout=timeout)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{name}'s kernel sent nothing for {timeout:.0f} s while {what}; "
                               f"last messages: {seen[-8:]}") from None
        if raw is None:
            raise RuntimeError(f"{name}'s kernel websocket closed while {what}")
        message = json.loads(raw)
        seen.append((message["channel"], message["msg_type"]))
        return message

    # -- Wait until the kernel answers on shell and its iopub reaches us. A websocket that hears
    # nothing for a minute is opened again, as JupyterLab reconnects (seen once in CI: a connection
    # the server accepted whose kernel_info requests were never answered).
    replied = published = False
    deadline = time.time() + 300
    reconnect_at = time.time() + 60
    while not (replied and published):
        if time.time() > deadline:
            raise RuntimeError(f"{name}'s kernel never answered kernel_info (replied {replied}, iopub {published})")
        if not (replied or published) and time.time() > reconnect_at:
            socket_.close()
            socket_, session_id = await connect()
            reconnect_at = time.time() + 60
        socket_.write_message(kernel_message("kernel_info_request", {}, session_id))
        try:
            while not (replied and published):
                message = await receive(2, "starting")
                replied |= message["msg_type"] == "kernel_info_reply"
                published |= message["channel"] == "iopub"
        except RuntimeError as error:
            if "sent nothing" not in str(error):
                raise

    results = []
    for index, code in enumerate(cells, 1):
        request = json.loads(kernel_message("execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True}, session_id))
        msg_id = request["header"]["msg_id"]
        socket_.write_message(json.dumps(request))
        text, error, reply, idle = [], None, None, False
        deadline = time.time() + CELL_TIMEOUT
        while reply is None or not idle:
            # Once the reply is in, idle follows at once; nbclient likewise gives iopub a short grace.
            wait = 30 if reply is not None else deadline - time.time()
            if wait <= 0:
                raise RuntimeError(f"{name}'s cell {index} ran over {CELL_TIMEOUT} s; last messages: {seen[-8:]}")
            try:
                message = await receive(wait, f"running cell {index}")
            except RuntimeError:
                if reply is None:
                    raise
                text.append(f"[no idle status on iopub within 30 s of cell {index}'s reply]")
                break
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if message["channel"] == "shell" and kind == "execute_reply":
                reply = content
                if content.get("status") == "error":
                    error = error or content.get("ename", "error")
            elif message["channel"] != "iopub":
                continue
            elif kind == "stream":
                text.append(content["text"])
            elif kind in ("display_data", "execute_result") and "image/png" in content["data"]:
                on_figure()
            elif kind == "error":
                error = content.get("ename", "error")
                text.append("\n".join(content.get("traceback", [])))
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        results.append(("".join(text), error))
        if error:
            break
    socket_.close()
    return results


def api_student(hub, name, cells, started, report):
    try:
        hub.start_server(name)
        report["server_s"] = time.time() - started

        def on_figure():
            report.setdefault("first_figure_s", time.time() - started)
            report["figures"] = report.get("figures", 0) + 1

        results = asyncio.run(run_cells(hub, name, cells, on_figure))
        report["all_cells_s"] = time.time() - started
        failed = [(i, out) for i, (out, error) in enumerate(results) if error]
        if failed:
            report["error"] = f"cell {failed[0][0] + 1} failed:\n{failed[0][1][-3000:]}"
        elif len(results) != len(cells):
            report["error"] = f"{len(results)} of {len(cells)} cells ran"
    except Exception as error:  # reported with the others, below
        report["error"] = f"{type(error).__name__}: {error}"


def browser_student(hub, figures, started, report):
    OUT.mkdir(parents=True, exist_ok=True)
    shot = OUT / "student-in-browser.png"
    done = subprocess.run(
        ["node", str(ROOT / "tests" / "browser" / "student.mjs"), hub.url, BROWSER_STUDENT, PASSWORD,
         f"mnist-gan/notebooks/{NOTEBOOK}", str(figures), str(shot)],
        capture_output=True, text=True, cwd=ROOT / "tests" / "browser")
    (OUT / "student-in-browser.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        report["error"] = f"the browser student failed:\n{done.stdout}{done.stderr}"
        return
    result = json.loads(done.stdout.strip().splitlines()[-1])
    report.update({k: v for k, v in result.items() if k.endswith("_s")})
    width, height = result["batch_figure"]
    if width < 200 or height < 200:
        report["error"] = f"the 5x5 figure on the page is {width}x{height} px"
    if result["errors"]:
        report["error"] = f"the page shows errors: {result['errors']}"
    report["figures"] = figures


def rss_mib(name):
    out = subprocess.run(["ps", "-u", name, "-o", "rss="], capture_output=True, text=True).stdout
    return sum(int(x) for x in out.split()) / 1024


def watch_memory(reports, stop):
    while not stop.is_set():
        for name, report in reports.items():
            report["peak_mib"] = max(report.get("peak_mib", 0), rss_mib(name))
        stop.wait(2)


def check_compiled_nothing(name, template_libraries, template_units):
    folder = Path(pwd.getpwnam(name).pw_dir) / ".cache" / "mnist-gan" / "hub" / "evcxr-kernel-0"
    if not folder.is_dir():
        return f"{name} has no kernel folder {folder}"
    extra = sorted(u for u in compiled_units(folder) - template_units if not u.startswith("ctx-"))
    if extra:
        return f"{name}'s kernel compiled {len(extra)} crates again: {extra[:8]}"
    again = rebuilt(template_libraries, folder)
    if again:
        return f"{name}'s kernel holds its own build of {again[:5]}"
    return None


def disk_mib(name):
    home = pwd.getpwnam(name).pw_dir
    out = subprocess.run(["du", "-sk", home], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def prerequisites():
    problems = []
    if os.geteuid() != 0:
        problems.append("run as root: the test makes the students' Unix accounts, and the hub starts "
                        "each student's server as that student")
    if not (TEMPLATE / ".mnist-gan-template").exists():
        problems.append(f"no prepared server in {SERVER}: run sudo bash scripts/hub/setup-server.sh")
    if not Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).exists():
        problems.append("no chromium: apt install chromium (scripts/test.sh does)")
    if not (ROOT / "tests" / "browser" / "node_modules" / "playwright-core").is_dir():
        problems.append("no playwright-core: npm ci --prefix tests/browser (scripts/test.sh does)")
    return problems


def main():
    problems = prerequisites()
    if problems:
        print("jupyterhub_class: cannot run:\n  - " + "\n  - ".join(problems), file=sys.stderr)
        return 1
    notebook = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    cells = [c.source for c in notebook.cells if c.cell_type == "code"]
    figures = sum(1 for c in notebook.cells if "expect-image" in c.metadata.get("tags", []))
    template_libraries = libraries(TEMPLATE)
    template_units = compiled_units(TEMPLATE)

    made_group = make_students()
    scratch = Path(tempfile.mkdtemp(prefix="mnist-gan-hub-"))
    os.chmod(scratch, 0o700)
    port = free_port()
    hub_log = open(scratch / "jupyterhub.log", "w")
    process = subprocess.Popen([str(SERVER / "venv" / "bin" / "jupyterhub"), "-f", str(hub_config(scratch, port))],
                               cwd=scratch, stdout=hub_log, stderr=subprocess.STDOUT)
    hub = Hub(f"http://127.0.0.1:{port}")
    reports = {name: {} for name in STUDENTS}
    stop = threading.Event()
    failure = None
    try:
        deadline = time.time() + 120
        while True:
            try:
                hub.api("GET", "/")
                break
            except (requests.ConnectionError, RuntimeError):
                if process.poll() is not None or time.time() > deadline:
                    raise RuntimeError("the hub did not start:\n" + (scratch / "jupyterhub.log").read_text()[-3000:])
                time.sleep(1)
        hub.api("POST", "/users", json={"usernames": STUDENTS[:-1]})  # the browser's logs in

        # -- Four students at once: three through the API, one in a browser.
        started = time.time()
        threads = [threading.Thread(target=api_student, args=(hub, name, cells, started, reports[name]))
                   for name in STUDENTS if name != BROWSER_STUDENT]
        threads.append(threading.Thread(target=browser_student,
                                        args=(hub, figures, started, reports[BROWSER_STUDENT])))
        monitor = threading.Thread(target=watch_memory, args=(reports, stop))
        for thread in [*threads, monitor]:
            thread.start()
        for thread in threads:
            thread.join()
        stop.set()
        monitor.join()

        # -- What each student got and cost.
        for name, report in reports.items():
            report["disk_mib"] = disk_mib(name)
            if "error" not in report:
                if report.get("figures", 0) < figures:
                    report["error"] = f"{report.get('figures', 0)} figures, expected {figures}"
                else:
                    problem = check_compiled_nothing(name, template_libraries, template_units)
                    if problem:
                        report["error"] = problem
        if libraries(TEMPLATE) != template_libraries:
            failure = "the shared template changed while students worked in it"
    except Exception as error:
        failure = f"{type(error).__name__}: {error}"
    finally:
        stop.set()
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        for name in STUDENTS:
            remove_student(name)
        if made_group:
            subprocess.run(["groupdel", GROUP], capture_output=True)

    OUT.mkdir(parents=True, exist_ok=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    lines = [f"JupyterHub, 4 students at once, notebook 3 in quick mode ({os.cpu_count()} CPUs: {cpu})",
             "student          how          server  first figure  all cells  peak memory  disk"]
    for name, report in reports.items():
        how = "browser" if name == BROWSER_STUDENT else "REST API"
        cell = lambda key: f"{report[key]:.0f} s" if key in report else "-"  # noqa: E731
        server = cell("lab_s") if name == BROWSER_STUDENT else cell("server_s")
        lines.append(f"{name:<16} {how:<12} {server:>6}  {cell('first_figure_s'):>12}  {cell('all_cells_s'):>9}"
                     f"  {report.get('peak_mib', 0):>7.0f} MiB  {report.get('disk_mib', 0):>4.0f} MiB")
    text = "\n".join(lines)
    (OUT / "report.txt").write_text(text + "\n")
    print(text)
    errors = [f"{name}: {r['error']}" for name, r in reports.items() if "error" in r]
    if failure:
        errors.append(failure)
    if errors:
        log = (scratch / "jupyterhub.log").read_text(errors="replace").splitlines()
        print(f"jupyterhub_class: FAILED (hub log: {scratch}/jupyterhub.log; its last 80 lines:)\n"
              + "\n".join(log[-80:]) + "\n" + "\n".join(errors), file=sys.stderr)
        return 1
    shutil.rmtree(scratch, ignore_errors=True)
    print("jupyterhub_class: ok: every student ran notebook 3, and no kernel compiled a dependency")
    return 0


if __name__ == "__main__":
    sys.exit(main())
