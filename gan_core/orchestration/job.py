"""One run of a sweep: its work computed, then its pages rendered, its status written.

The job computes and the notebooks render. Its work (training, evaluation, loss statistics:
``analysis.work``) runs in a worker process (``worker``) whose step the job reads line by line;
then one kernel renders the run's notebooks in turn with papermill (they read what the work
wrote), and nbconvert makes their pages. Every fault fails its run alone, within seconds, with
where and why in its status.json: a worker or kernel that dies (killed, out of memory), an
error in a step or a cell, a full disk, the run's time limit (``Job.timeout_s``: its processes
are stopped, children and all). The job then goes on to the next run. Picklable ``Job``s let
any executor run it where the files are.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

from ..paths import scrub
from ..reporting import html as report
from ..rundir import RunDir, write_atomic

# nbformat validates with jsonschema, which imports rfc3987_syntax when it is installed (JupyterLab's
# jupyter-events pulls it in) for its "iri" format checker; that module builds a grammar at import:
# 3 s in every process that reads a notebook on a 2-core CPU (python-jsonschema/jsonschema#1392).
# No notebook schema uses the format, and without the module jsonschema leaves it unchecked.
if "jsonschema" not in sys.modules:
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]

KERNEL_START_S = 60  # a kernel that has not answered by then failed to start
KERNEL = "gan-workbook"  # the kernelspec make setup installs into its environment (--sys-prefix)
KERNEL_DISPLAY = "Python 3 (GAN Workbook)"
FALLBACK_KERNEL = "python3"  # ipykernel's own: the Python that runs Jupyter


def kernel_spec() -> tuple[str, str]:
    """The kernelspec (name, display name) of this environment: the workbook's, where this
    Python has it (``make setup`` installs it), else ipykernel's own. The notebooks carry it, so
    JupyterLab starts their kernel without asking, in the Python gan_core is installed in (a
    ``python3`` spec of another environment in the home folder would shadow ipykernel's own)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        return FALLBACK_KERNEL, "Python 3 (ipykernel)"
    command = Path(spec.argv[0]) if spec.argv else Path()
    ours = command.name.startswith("python") and command.parent.resolve() == Path(sys.executable).parent.resolve()
    return (KERNEL, spec.display_name) if ours else (FALLBACK_KERNEL, "Python 3 (ipykernel)")


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
    timeout_s: float = 0.0  # the run's time limit (--run-timeout), work and pages together; 0: none


class RunFailed(Exception):
    """A run's step that did not finish: where (a step of the work, or a notebook) and why."""

    def __init__(self, step: str, reason: str, link: str = ""):
        super().__init__(f"{step}: {reason}")
        self.step, self.reason, self.link = step, reason, link


class Deadline:
    """The run's time limit: when it passes, every process group it guards is killed (the
    worker's, the kernel's: their children with them), so the step under way ends at once."""

    def __init__(self, seconds: float):
        self.seconds, self.passed, self.groups = seconds, False, set()
        self._timer = threading.Timer(seconds, self._expire) if seconds > 0 else None
        if self._timer:
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        self.passed = True
        for group in list(self.groups):
            kill_group(group)

    def guard(self, group: int) -> None:
        self.groups.add(group)
        if self.passed:
            kill_group(group)

    def release(self, group: int) -> None:
        self.groups.discard(group)

    def cancel(self) -> None:
        if self._timer:
            self._timer.cancel()

    def reason(self, step: str) -> str:
        return (f"the run passed its time limit of {self.seconds:g} s (--run-timeout) during {step}; its processes "
                "were stopped")


def kill_group(group: int) -> None:
    """SIGKILL a process group (a worker or kernel and its children); gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


def execute_run(job: Job) -> dict[str, Any]:
    """Compute a run's work, then render its notebooks into its folder; mark it done.

    A failure stops the run where it happened: a step of the work that fails leaves its pages
    unrendered (they would show nothing), a notebook that fails is still rendered with its
    error (no traceback on the page: that goes to train.log) and the notebooks after it are not run.
    """
    os.environ.update(OMP_NUM_THREADS=str(job.threads), MKL_NUM_THREADS=str(job.threads))
    run = RunDir(Path(job.run_dir).resolve())
    status: dict[str, Any] = {"status": "running", "started": _now(), "reports": [], "host": os.uname().nodename,
                              "step": "starting", "step_s": {}}
    run.write_status(status)
    start, deadline = time.perf_counter(), Deadline(job.timeout_s)
    try:
        work(run, job, status, deadline)
        render_pages(run, job, status, deadline)
        status.update(status="ok", step="done")
    except RunFailed as err:
        status.update(status="failed", failed_step=err.step, error=scrub(err.reason, run.root.parent),
                      failed_link=err.link)
    finally:
        deadline.cancel()
    status["duration_s"] = round(time.perf_counter() - start, 1)
    if status["status"] == "ok":  # all of this run's time but its training: starts, scores, notebooks, pages
        trained = run.read_metrics().get("training", {}).get("session_seconds", 0.0)
        status["reports_s"] = round(status["duration_s"] - trained, 1)
    run.write_status(status)
    if status["status"] == "ok":
        write_atomic(run.done, job.key)
    return {"run": run.name, **status}


# --- the work: a worker process ---------------------------------------------------------------
def work(run: RunDir, job: Job, status: dict[str, Any], deadline: Deadline) -> None:
    """Run ``analysis.work``'s steps in a worker process (``worker``), following its steps in
    ``status``; its stderr (warnings, tracebacks) goes to train.log.

    Raises:
        RunFailed: a step raised, the worker died or the time limit passed (naming the step).
    """
    lines: list[str] = []
    with open(run.console, "ab") as console:
        process = subprocess.Popen([sys.executable, "-m", "gan_core.orchestration.worker", str(run.root)],
                                   stdout=subprocess.PIPE, stderr=console, cwd=run.root, text=True,
                                   start_new_session=True)  # its group: stopped with its children
    deadline.guard(process.pid)
    reader = threading.Thread(target=lambda: [lines.append(line) for line in process.stdout], daemon=True)
    reader.start()
    said = Said(run, status)
    try:
        while process.poll() is None:
            said.read(lines)
            time.sleep(0.2)
    finally:
        deadline.release(process.pid)
        kill_group(process.pid)  # what the worker started (data loader workers) goes with it
        reader.join(5)  # the pipe's last lines
        said.read(lines)
        said.close()
    step = status["step"]
    if deadline.passed:
        raise RunFailed(step, deadline.reason(step))
    if said.failure:
        raise RunFailed(said.failure["step"], said.failure["error"])
    if process.returncode:
        raise RunFailed(step, _died(process.returncode, "the run's worker"))


class Said:
    """What the worker said so far (``worker``'s lines): each step's start goes into the run's
    status (with the seconds of the step before), a failure is kept, anything else is logged."""

    def __init__(self, run: RunDir, status: dict[str, Any]):
        self.run, self.status, self.seen, self.failure = run, status, 0, {}
        self.began = time.perf_counter()

    def read(self, lines: list[str]) -> None:
        while self.seen < len(lines):
            word, _, value = lines[self.seen].strip().partition(" ")
            if word == "step":
                self._begin(json.loads(value))
            elif word == "failed":
                self.failure = json.loads(value)
            elif word:
                self.run.logger()(lines[self.seen].rstrip())
            self.seen += 1

    def _begin(self, step: str) -> None:
        """Close the step under way (its seconds) and begin ``step`` ("": none)."""
        if self.status["step"] != "starting":
            self.status["step_s"][self.status["step"]] = round(time.perf_counter() - self.began, 1)
        self.began = time.perf_counter()
        if step:
            self.status["step"] = step
            self.run.write_status(self.status)

    def close(self) -> None:
        self._begin("")


def _died(code: int, who: str) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        return f"{who} was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"{who} exited with code {code} without saying why (its train.log may)"


# --- the pages: one kernel renders the notebooks --------------------------------------------
def render_pages(run: RunDir, job: Job, status: dict[str, Any], deadline: Deadline) -> None:
    """Execute the run's notebooks in order in one kernel and render each to HTML (and PDF).

    Raises:
        RunFailed: a notebook failed (it is rendered with its error) or its kernel died.
    """
    params = {**dict(job.parameters), "run_dir": str(run.root), "compute": False}
    with started_kernel(run.root, deadline) as kernel:
        for notebook in map(Path, job.notebooks):
            status["step"] = notebook.stem
            run.write_status(status)
            began, failure = time.perf_counter(), None
            try:
                execute_notebook(notebook, run.executed(notebook), params, run.root, kernel)
            except Exception as err:  # a cell's exception, a dead kernel: the run failed here
                reason = deadline.reason(notebook.stem) if deadline.passed else _notebook_error(err)
                failure = RunFailed(notebook.stem, reason, f"{run.page(notebook).name}#papermill-error-cell")
            status["step_s"][notebook.stem] = round(time.perf_counter() - began, 1)
            if run.executed(notebook).exists():
                render(run, notebook, job.code, job.pdf)
                status["reports"].append(run.page(notebook).name)
            if failure:
                raise failure


def _notebook_error(err: Exception) -> str:
    if type(err).__name__ == "DeadKernelError":
        return "the notebook's kernel died (killed, or out of memory?)"
    return _first_line(err)


@contextlib.contextmanager
def started_kernel(cwd: Path, deadline: Deadline | None = None) -> Iterator[Any]:
    """A kernel (``kernel_spec``) working in ``cwd`` for a run's notebooks, its sockets and connection
    file in a private temporary folder (never a report folder, never another kernel's: IPC,
    no TCP port to race for). Its client is asynchronous (nbclient's default), so nbclient sees
    a kernel that dies within a second. Shut down, with its process group, on exit."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync
    sockets = tempfile.mkdtemp(prefix="gan-kernel-")
    kernel = AsyncKernelManager(kernel_name=kernel_spec()[0], transport="ipc", ip=os.path.join(sockets, "ipc"),
                                connection_file=os.path.join(sockets, "kernel.json"))
    run_sync(kernel.start_kernel)(cwd=str(cwd))
    group = kernel.provisioner.pgid or kernel.provisioner.pid
    if deadline:
        deadline.guard(group)
    try:
        yield kernel
    finally:
        if deadline:
            deadline.release(group)
        with contextlib.suppress(Exception):  # a dead kernel has nothing left to shut down
            run_sync(kernel.shutdown_kernel)(now=True)
        kill_group(group)  # whatever a cell started
        shutil.rmtree(sockets, ignore_errors=True)


def execute_notebook(notebook: Path, out: Path, parameters: dict[str, Any], cwd: Path, kernel: Any) -> None:
    """Run one notebook with papermill in ``kernel`` (from ``started_kernel``; its variables and
    figures are cleared first, so a run's notebooks pay for the kernel's start and imports once);
    the executed copy is written even when a cell fails."""
    import papermill
    declared = papermill.inspect_notebook(str(notebook))
    _clear_namespace(kernel)
    papermill.execute_notebook(
        str(notebook), str(out), parameters={k: v for k, v in parameters.items() if k in declared},
        cwd=str(cwd), kernel_name=kernel.kernel_name, progress_bar=False, log_output=False, km=kernel,
        start_timeout=KERNEL_START_S)


# what %reset -f forgets (the user's names, the output history and its _N names, the figures),
# without its two full garbage collections (0.45 s per notebook on a 2-core CPU)
CLEAR = ("(lambda ip: [ip.user_ns.pop(name) for name in list(ip.user_ns) if name not in ip.user_ns_hidden\n"
         "             or (name[:1] == '_' and name[1:].isdigit())])(get_ipython())\n"
         "get_ipython().user_ns['_oh'].clear()\n"
         "get_ipython().user_ns.update(_='', __='', ___='')\n"
         "__import__('matplotlib.pyplot').pyplot.close('all')")


def _clear_namespace(kernel: Any) -> None:
    """Forget the previous notebook's variables and figures (imported modules stay loaded), on
    the shell channel alone: its reply says when it is done. A kernel that dies meanwhile is
    named within a second."""
    from jupyter_core.utils import run_sync
    client = kernel.blocking_client()
    client.start_channels(iopub=False, stdin=False, hb=False, control=False)
    try:
        sent = client.execute(CLEAR, silent=True, store_history=False)
        deadline = time.monotonic() + KERNEL_START_S
        while True:
            try:
                reply = client.get_shell_msg(timeout=1)
            except Empty:
                if not run_sync(kernel.is_alive)() or time.monotonic() > deadline:
                    raise RuntimeError("the notebook's kernel died (killed, or out of memory?)") from None
                continue
            if reply["parent_header"].get("msg_id") == sent:
                break
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"clearing the kernel failed: {reply['content'].get('evalue')}")
    finally:
        client.stop_channels()


def render(run: RunDir, notebook: Path, code: bool, pdf: str) -> None:
    """The executed notebook cleaned for its reader (``report.quiet``: what went to stderr and
    tracebacks into train.log), then its page (and PDF on ``pdf`` pages, "" for none)."""
    executed = run.executed(notebook)
    report.quiet(executed, run.logger(), run.root.parent)
    report.render_html(executed, run.page(notebook), code=code)
    print_pdf(run.page(notebook), pdf)


def print_pdf(page: Path, size: str) -> None:
    """Print ``page`` to PDF beside it on ``size`` pages when asked (``size`` not "") and Chromium
    is there (run_sweep says when not)."""
    if size and report.chromium():
        report.render_pdf(page, page.with_suffix(".pdf"), size)


def main(argv: list[str]) -> int:
    """``python -m gan_core.orchestration.job JOB.json``: one run in a process of its own (the
    local executor's). It exits when its parent (the sweep) is gone; SIGTERM stops its worker
    and kernel first."""
    raw = json.loads(Path(argv[0]).read_text())
    job = Job(**{**raw, "notebooks": tuple(raw["notebooks"]), "parameters": tuple(map(tuple, raw["parameters"]))})
    parent = os.getppid()

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)  # orphaned: the sweep was killed; stop rather than run on unseen

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds: the worker's and the kernel's groups are killed

    signal.signal(signal.SIGTERM, stop)
    threading.Thread(target=watch_parent, daemon=True).start()
    execute_run(job)
    return 0


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("---")]
    return (lines[-1] if lines else repr(err))[:300]


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
