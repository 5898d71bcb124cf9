#!/usr/bin/env python3
"""`bash scripts/notebooks.sh` opens JupyterLab on the notebooks with the mnist-gan kernel.

Starts the script as a teacher would (on a free local port, no browser), waits for the server,
and checks through its REST API that it serves the notebooks folder, offers the mnist-gan kernel,
and opens notebook 1 asking for that kernel. Then stops it.

Usage: open_notebooks.py   (after scripts/setup.sh)
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "open-notebooks-check"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    url = f"http://127.0.0.1:{port}{path}{'&' if '?' in path else '?'}token={TOKEN}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def main():
    port = free_port()
    server = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "notebooks.sh"), "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--ServerApp.token={TOKEN}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                status, _ = get(port, "/api/status")
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    print(f"FAILED: JupyterLab did not start:\n{server.stdout.read()[-3000:]}")
                    return 1
                time.sleep(1)
        specs = json.loads(get(port, "/api/kernelspecs")[1])["kernelspecs"]
        if "mnist-gan" not in specs:
            print(f"FAILED: JupyterLab offers the kernels {sorted(specs)}, not mnist-gan")
            return 1
        contents = json.loads(get(port, "/api/contents/01-training-a-gan.ipynb")[1])
        asked = contents["content"]["metadata"]["kernelspec"]["name"]
        page, _ = get(port, "/lab/tree/01-training-a-gan.ipynb")
        if asked != "mnist-gan" or page != 200:
            print(f"FAILED: notebook 1 asks for {asked!r}; its page answered {page}")
            return 1
        print(f"ok: scripts/notebooks.sh serves notebooks/ on port {port} with the kernel "
              f"{specs['mnist-gan']['spec']['display_name']!r}")
        return 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
