"""``visionkit check-data``: every record read once, every problem listed, exit status 2 when there are any."""

import numpy as np
import pytest
import torch
import toy
from PIL import Image

from visionkit.cli import main
from visionkit.errors import DataError

TOY = ["check-data", "--model", "toy.ToyRegressionTask", "--data", "toy.ToyRegressionData",
       "--data.init_args.num_train", "20", "--data.init_args.num_val", "8"]


def test_clean_data_passes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(TOY) == 0
    assert "ok: ToyRegressionData, records read: train 20, val 8, test 8" in capsys.readouterr().out


def test_every_bad_record_is_listed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    read = toy._ToyData.__getitem__
    seen = []

    def damaged(self, i):
        seen.append(i)
        if len(self) == 20 and i in (3, 11):
            raise DataError(f"/data/train_{i}.txt:2: expected 9 fields, got 4")
        sample = read(self, i)
        if len(self) == 20 and i == 7:
            sample["x"] = sample["x"].clone()
            sample["x"][1] = torch.inf
        return sample

    monkeypatch.setattr(toy._ToyData, "__getitem__", damaged)
    with pytest.raises(SystemExit) as exc:
        main(TOY)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines == ["train record 3: DataError: /data/train_3.txt:2: expected 9 fields, got 4",
                     "train record 7: non-finite values in x",
                     "train record 11: DataError: /data/train_11.txt:2: expected 9 fields, got 4"]
    assert sorted(seen) == sorted([*range(20), *range(8), *range(8)])  # each record of each split read once
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [
        "error: 3 problem(s) in the data of ToyRegressionData (records read: train 20, val 8, test 8)"]


def test_reader_errors_of_each_stage_are_listed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for split, text in (("train", "10 10 30 10 plane\n"), ("val", "10 10 30 10 30 20 10 20 plane 0\n")):
        (tmp_path / "dota" / split / "images").mkdir(parents=True)
        (tmp_path / "dota" / split / "labelTxt").mkdir()
        Image.fromarray(np.zeros((32, 40, 3), np.uint8)).save(tmp_path / "dota" / split / "images" / "a.png")
        (tmp_path / "dota" / split / "labelTxt" / "a.txt").write_text(text)
    with pytest.raises(SystemExit) as exc:
        main(["check-data", "--model", "RotatedDetectionTask", "--data", "DOTA", "--data.init_args.root", "dota"])
    assert exc.value.code == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("setup(fit): DataError: dota/train/labelTxt/a.txt:1: expected 8 coordinates")
    assert lines[1].startswith("setup(test): DatasetNotFoundError: data.init_args.root: dota/test/images")
