"""The command line as a user types it: samples of a class from a trained run."""
import numpy as np
from PIL import Image

from gan_core.cli import main
from gan_core.training import train

from .conftest import real_data_name

SNEAKER, BAG = ("Sneaker", "Bag") if real_data_name() == "fashion-mnist" else ("7", "8")  # digits: names are ids


def test_generate_samples_of_a_class(tiny_config, tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny_config(model={"conditional": True}), run, log=lambda s: None)
    assert main(["generate", str(run), "--class", SNEAKER, "-n", "9"]) == 0
    by_name = np.asarray(Image.open(run / f"generated_{SNEAKER}.png"))
    assert by_name.shape[:2] == (3 * 28 + 4 * 2, 3 * 28 + 4 * 2)  # 3 x 3 images, 2 px padding
    assert by_name.std() > 5
    assert main(["generate", str(run), "--class", "7", "-n", "9", "--out", str(tmp_path / "by_id.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "by_id.png")), by_name)  # id 7 is Sneaker
    assert main(["generate", str(run), "--class", BAG, "-n", "9", "--out", str(tmp_path / "bag.png")]) == 0
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "bag.png")), by_name)
    capsys.readouterr()
    assert main(["generate", str(run), "--class", "Sock"]) == 2
    assert "'Sock' is not a class" in capsys.readouterr().err


def test_generate_from_an_unconditional_run(tiny_config, tmp_path, capsys):
    train(tiny_config(), tmp_path / "run", log=lambda s: None)
    assert main(["generate", str(tmp_path / "run"), "-n", "4"]) == 0
    assert (tmp_path / "run" / "generated.png").exists()
    assert main(["generate", str(tmp_path / "run"), "--class", SNEAKER]) == 2
    assert "unconditional" in capsys.readouterr().err


def test_readers_and_the_config_commands_load_no_torch(tmp_path):
    """Reporting and analysis read the run folder's files, and `gan-workbook config` and
    `sweep --dry-run` check a config, without loading torch (seconds per process on a CPU)."""
    import subprocess
    import sys

    from .conftest import REPO
    readers = [f"gan_core.reporting.{name}" for name in
               ("architecture", "figures", "html", "index", "prose", "sweep_figures", "tables", "verdicts", "workspace")]
    readers += [f"gan_core.analysis.{name}" for name in ("claims", "comparison", "losses", "stats")]
    code = "\n".join([
        "import contextlib, io, sys",
        f"import {', '.join(readers)}",
        "from gan_core.cli import main",
        "with contextlib.redirect_stdout(io.StringIO()):",
        "    codes = [main(['config', 'params/quick.yaml']), main(['sweep', 'params/sweeps/quick.yaml', '--dry-run'])]",
        "print(codes, 'torch' in sys.modules)"])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.stdout.split() == ["[0,", "0]", "False"], done.stdout + done.stderr
