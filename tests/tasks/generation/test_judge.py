"""Judge: save/load round trip, frozen, bad files name themselves."""

import pytest
import torch

from visionkit.errors import CheckpointError, DatasetNotFoundError
from visionkit.tasks.generation.judge import JudgeClassifier, load_judge, save_judge


def test_save_load_round_trip(tmp_path):
    j = JudgeClassifier(1, 10, width=8, feature_dim=16).eval()
    save_judge(j, tmp_path / "j.pt")
    k = load_judge(tmp_path / "j.pt")
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(k(x), j(x))
    assert not any(p.requires_grad for p in k.parameters()) and not k.training
    v = JudgeClassifier(1, 5, width=4, feature_dim=8, spatial_dims=3)
    assert v.features(torch.rand(2, 1, 8, 8, 8)).shape == (2, 8)


def test_bad_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="judge_path"):
        load_judge(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_judge(tmp_path / "bad.pt")
