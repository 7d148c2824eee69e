"""One run of a sweep: its notebooks executed by papermill in its folder, rendered to HTML (and
PDF), its status written. Picklable ``Job``s let any executor run it where the files are."""
from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.manager import KernelManager
from traitlets import default

from ..reporting import html as report
from ..rundir import RunDir, write_atomic

# nbformat validates with jsonschema, which imports rfc3987_syntax when it is installed (JupyterLab's
# jupyter-events pulls it in) for its "iri" format checker; that module builds a grammar at import:
# 3 s in every process that reads a notebook on a 2-core CPU (python-jsonschema/jsonschema#1392).
# No notebook schema uses the format, and without the module jsonschema leaves it unchecked.
if "jsonschema" not in sys.modules:
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]


class ReadyClient(BlockingKernelClient):
    """A client that is ready once the kernel answers on the shell channel and its IOPub
    subscription delivers. jupyter_client's own ``wait_for_ready`` then drains IOPub until 0.2 s
    pass in silence, and nbclient calls it before every notebook: 0.2 s of waiting per notebook.
    Nothing needs draining: nbclient skips every IOPub message that is not its own cell's."""

    def wait_for_ready(self, timeout: float | None = None) -> None:
        timeout = timeout or 60
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent = self.kernel_info()
            try:
                reply = self.get_shell_msg(timeout=1)
                if reply["parent_header"].get("msg_id") == sent:
                    self.get_iopub_msg(timeout=0.2)  # the request's status: IOPub is connected
                    return
            except Empty:  # no answer yet, or IOPub not connected yet (ZeroMQ's slow joiner): again
                if not self.is_alive():
                    raise RuntimeError("the kernel died before replying to kernel_info") from None
        raise RuntimeError(f"the kernel did not reply to kernel_info in {timeout} s")


class IPCKernelManager(KernelManager):
    """A kernel on Unix sockets beside its connection file (no TCP port to race for), whose
    clients are ``ReadyClient``s."""

    @default("transport")
    def _transport_default(self) -> str:
        return "ipc"

    @default("client_factory")
    def _client_factory_default(self) -> type:
        return ReadyClient


@dataclass(frozen=True)
class Job:
    """Everything one run needs, picklable, so any executor can run it where the files are."""

    run_dir: str
    notebooks: tuple[str, ...]
    key: str
    code: bool
    pdf: str  # the PDFs' page size (reporting.html.page_size), "" for none
    threads: int
    parameters: tuple[tuple[str, Any], ...] = ()  # the notebooks' own parameters (report.parameters)


@contextmanager
def started_kernel(cwd: Path) -> Iterator[KernelManager]:
    """A python3 kernel working in ``cwd``, its sockets and connection file in a private temporary
    folder (never in a report folder, never shared with another kernel); shut down on exit."""
    sockets = tempfile.mkdtemp(prefix="gan-kernel-")
    kernel = IPCKernelManager(kernel_name="python3", ip=os.path.join(sockets, "ipc"),
                              connection_file=os.path.join(sockets, "kernel.json"))
    kernel.start_kernel(cwd=str(cwd))
    try:
        client = kernel.blocking_client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)  # raises when the kernel dies while starting
        finally:
            client.stop_channels()
        yield kernel
    finally:
        kernel.shutdown_kernel(now=True)
        shutil.rmtree(sockets, ignore_errors=True)


def execute_notebook(notebook: Path, out: Path, parameters: dict[str, Any], cwd: Path,
                     kernel: KernelManager) -> None:
    """Run one notebook with papermill in ``kernel`` (from ``started_kernel``; its variables are
    cleared first, so a run's notebooks pay for the kernel start and the imports once); the
    executed copy is written even when a cell fails."""
    import papermill
    declared = papermill.inspect_notebook(str(notebook))
    _clear_namespace(kernel)
    papermill.execute_notebook(
        str(notebook), str(out), parameters={k: v for k, v in parameters.items() if k in declared},
        cwd=str(cwd), kernel_name="python3", progress_bar=False, log_output=False, km=kernel)


# what %reset -f forgets (the user's names, the output history and its _N names, the figures),
# without its two full garbage collections (0.45 s per notebook on a 2-core CPU)
CLEAR = ("(lambda ip: [ip.user_ns.pop(name) for name in list(ip.user_ns) if name not in ip.user_ns_hidden\n"
         "             or (name[:1] == '_' and name[1:].isdigit())])(get_ipython())\n"
         "get_ipython().user_ns['_oh'].clear()\n"
         "get_ipython().user_ns.update(_='', __='', ___='')\n"
         "__import__('matplotlib.pyplot').pyplot.close('all')")


def _clear_namespace(kernel: KernelManager) -> None:
    """Forget the previous notebook's variables and figures (imported modules stay loaded). On
    the shell channel alone: its reply says when it is done, with no wait for the output channel."""
    client = kernel.blocking_client()
    client.start_channels(iopub=False, stdin=False, hb=False, control=False)
    try:
        sent = client.execute(CLEAR, silent=True, store_history=False)
        while True:
            reply = client.get_shell_msg(timeout=120)
            if reply["parent_header"].get("msg_id") == sent:
                break
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"clearing the kernel failed: {reply['content'].get('evalue')}")
    finally:
        client.stop_channels()


def execute_run(job: Job) -> dict[str, Any]:
    """Execute a run's notebooks in order into its folder, render them, mark it done.

    A failing notebook is still rendered (papermill marks the failing cell); the notebooks
    after it are not run, since they read what it should have produced.
    """
    os.environ.update(OMP_NUM_THREADS=str(job.threads), MKL_NUM_THREADS=str(job.threads))
    run = RunDir(Path(job.run_dir).resolve())
    status: dict[str, Any] = {"status": "running", "started": _now(), "reports": [], "host": os.uname().nodename}
    run.write_status(status)
    start = time.perf_counter()
    params = {**dict(job.parameters), "config_path": str(run.config), "run_dir": str(run.root), "progress": False}
    durations = status["notebook_s"] = {}
    with started_kernel(run.root) as kernel:
        for notebook in map(Path, job.notebooks):
            executed, page = run.executed(notebook), run.page(notebook)
            run.write_status({**status, "notebook": notebook.stem})  # for the sweep's progress lines
            began = time.perf_counter()
            try:
                execute_notebook(notebook, executed, params, run.root, kernel)
            except Exception as err:  # a cell's exception, a dead kernel, a timeout: the run failed
                status.update(status="failed", failed_notebook=notebook.stem,
                              error=f"{type(err).__name__}: {_first_line(err)}",
                              failed_link=f"{page.name}#papermill-error-cell")
            durations[notebook.stem] = round(time.perf_counter() - began, 1)
            if executed.exists():
                _render(executed, page, job, status)
            if status["status"] == "failed":
                break
        else:
            status["status"] = "ok"
    status["duration_s"] = round(time.perf_counter() - start, 1)
    if status["status"] == "ok":  # all of this run's time but its training: kernel, notebooks, pages, PDFs
        trained = run.read_metrics().get("training", {}).get("session_seconds", 0.0)
        status["reports_s"] = round(status["duration_s"] - trained, 1)
    run.write_status(status)
    if status["status"] == "ok":
        write_atomic(run.done, job.key)
    return {"run": run.name, **status}


def main(argv: list[str]) -> int:
    """``python -m gan_core.orchestration.job JOB.json``: one run in a process of its own (the
    local executor's worker). It exits when its parent (the sweep) is gone, and its kernel with it."""
    raw = json.loads(Path(argv[0]).read_text())
    job = Job(**{**raw, "notebooks": tuple(raw["notebooks"]), "parameters": tuple(map(tuple, raw["parameters"]))})
    parent = os.getppid()

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)  # orphaned: the sweep was killed; stop rather than run on unseen

    threading.Thread(target=watch_parent, daemon=True).start()
    execute_run(job)
    return 0


def _render(executed: Path, page: Path, job: Job, status: dict[str, Any]) -> None:
    report.render_html(executed, page, code=job.code)
    status["reports"].append(page.name)
    pdf(page, job.pdf)


def pdf(page: Path, size: str) -> None:
    """Print ``page`` to PDF beside it on ``size`` pages when asked (``size`` not "") and Chromium
    is there (run_sweep says when not)."""
    if size and report.chromium():
        report.render_pdf(page, page.with_suffix(".pdf"), size)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("---")]
    return (lines[-1] if lines else repr(err))[:300]


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
