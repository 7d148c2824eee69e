"""Faults injected into one run of a sweep, for tests/test_faults.py.

Loaded in every process of a sweep as a plugin module (``GAN_WORKBOOK_FAMILIES=tests.faults``,
which gan_core imports in the sweep, its runs' workers and kernels) when ``GAN_WORKBOOK_FAULTS``
is set. It registers no family: in a process working in a run's folder whose name is a fault
below (a run's worker and kernel work there), it wraps one gan_core function so that the fault
strikes where a real one would, through gan_core's own code paths:

    kill-training    the worker is killed (SIGKILL, as the out-of-memory killer does) mid-training
    kill-evaluation  the worker is killed while it scores the generator
    kill-job         the run's job process is killed mid-training (its worker sees it gone)
    hang             a cell of 02_training hangs, with a child process of its own
    disk-full        the second epoch's checkpoint cannot be written (RLIMIT_FSIZE: EFBIG, as a full disk)
    memory           a training step raises MemoryError
    kill-kernel      the kernel is killed while 03_loss_analysis runs
"""
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

FAULT = Path.cwd().name if os.environ.get("GAN_WORKBOOK_FAULTS") else ""
STEP = 12  # a training step in the second epoch, after the first checkpoint (8 steps an epoch)


def _at_step(kind):
    from gan_core.training.trainer import Trainer
    step = Trainer.train_step

    def faulty(self, real, labels=None):
        if self.step == STEP:
            if kind == "memory":
                raise MemoryError("injected: no memory for the step's activations")
            os.kill(os.getpid() if kind == "kill-training" else os.getppid(), signal.SIGKILL)
            time.sleep(10)  # the signal lands before the next step
        return step(self, real, labels)

    Trainer.train_step = faulty


def _kill_evaluation():
    from gan_core.evaluation.run import Scorer

    def killed(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    Scorer.score = killed


def _disk_full():
    from gan_core.training.trainer import Trainer
    save = Trainer.save_checkpoint

    def full(self):
        if self.epoch == 2:  # the first epoch's checkpoint is written; nothing over 16 kB after it
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (16384, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        return save(self)

    Trainer.save_checkpoint = full


def _in_notebook(module, name, action):
    import importlib
    owner = importlib.import_module(module)
    original = getattr(owner, name)

    def wrapped(*args, **kwargs):
        action()
        return original(*args, **kwargs)

    setattr(owner, name, wrapped)


def _hang():
    subprocess.Popen(["sleep", "3600"])  # a child of the hung cell: it must not outlive the run
    time.sleep(3600)


def _in_kernel():
    try:
        get_ipython  # noqa: F821  (IPython's builtin: this process is a kernel)
    except NameError:
        return False
    return True


if FAULT in ("kill-training", "kill-job", "memory"):
    _at_step(FAULT)
elif FAULT == "kill-evaluation":
    _kill_evaluation()
elif FAULT == "disk-full":
    _disk_full()
elif FAULT == "hang" and _in_kernel():
    _in_notebook("gan_core.reporting.figures", "loss_curves", _hang)
elif FAULT == "kill-kernel" and _in_kernel():
    _in_notebook("gan_core.reporting.figures", "epoch_losses", lambda: os.kill(os.getpid(), signal.SIGKILL))
