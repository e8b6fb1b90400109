"""A Voila server on 127.0.0.1 for one test: started, waited for, stopped, cleaned up.

Voila starts a kernel per page load, in its own process session, so stopping the
server's process group would not reach it: the server is sent SIGTERM (it shuts its
kernels down), and any child process recorded while it ran is killed by PID after.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VoilaServer:
    def __init__(self, notebook: Path, workdir: Path, env=None):
        self.notebook, self.workdir = notebook, workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "voila.log"
        self.env = dict(env or os.environ)
        # keep Jupyter's runtime files and notebook-signing key inside the test folder
        self.env["JUPYTER_RUNTIME_DIR"] = str(workdir / "jupyter_runtime")
        self.env["JUPYTER_DATA_DIR"] = str(workdir / "jupyter_data")
        self.proc = None
        self.children = set()

    def start(self, timeout: float = 60.0) -> "VoilaServer":
        voila = Path(sys.executable).with_name("voila")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(voila), self.notebook.name, "--no-browser", f"--port={self.port}",
             "--Voila.ip=127.0.0.1", "--VoilaConfiguration.show_tracebacks=True"],
            cwd=self.workdir, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        # readiness: a static file (GET / would start a kernel and run the notebook)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"voila exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/voila/static/voila.js", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"voila did not come up in {timeout} s:\n{self.log()}")

    def record_children(self) -> None:
        """Remember the server's child processes (kernels) so they can be reaped."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.children |= {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                pass

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        self.record_children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in self.children:
            try:
                p = psutil.Process(pid)
                p.kill()
                p.wait(10)
            except psutil.NoSuchProcess:
                pass
        self._log.close()
        self.proc = None
