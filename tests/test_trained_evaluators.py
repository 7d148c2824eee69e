"""Issue 33: what identifies an evaluator trained from a user's own images (torch-free part)."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from gan_core import evaluators
from tests.images import one_folder, shapes_folder


def _config(root, name="imagefolder"):
    return SimpleNamespace(data=SimpleNamespace(name=name, root=str(root)))


def test_labels_from_class_folders(tmp_path):
    shapes_folder(tmp_path / "shapes", per_class=3)
    one_folder(tmp_path / "art", count=3, size=32)
    assert evaluators.folder_classes(_config(tmp_path / "shapes")) == ["class_0", "class_1", "class_2"]
    assert evaluators.labelled(_config(tmp_path / "shapes"))
    assert not evaluators.labelled(_config(tmp_path / "art"))
    assert evaluators.labelled(_config(tmp_path, name="mnist"))


def test_fingerprint_follows_the_files(tmp_path):
    root = shapes_folder(tmp_path / "shapes", per_class=3, size=16)
    config = _config(root)
    first = evaluators.fingerprint(config)
    assert evaluators.fingerprint(config) == first  # unchanged folder: the same evaluator
    image = root / "class_0" / "0000.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    touched = evaluators.fingerprint(config)
    assert touched != first
    (root / "class_1" / "0001.png").unlink()
    assert evaluators.fingerprint(config) not in (first, touched)
    (root / "class_0" / "notes.txt").write_text("not an image")
    assert len(evaluators.data_files(config)[1]) == 8


def test_no_files_is_an_error(tmp_path):
    with pytest.raises(evaluators.EvaluatorError, match="no imagefolder files"):
        evaluators.fingerprint(_config(tmp_path))
    with pytest.raises(evaluators.EvaluatorError, match="no cifar10 files"):
        evaluators.fingerprint(_config(tmp_path, name="cifar10"))
