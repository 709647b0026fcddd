"""Every config in configs/ parses: its classes resolve and every key is accepted."""

from pathlib import Path

import pytest

from visionkit.cli import main

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_parses(config, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", str(config), "--print_config"])
    captured = capsys.readouterr()
    assert exc.value.code == 0, captured.err[-2000:]
    assert "class_path" in captured.out


def test_every_config_says_what_it_does():
    for config in CONFIGS:
        first = config.read_text().lstrip().splitlines()[0]
        assert first.startswith("#"), f"{config} does not start with a comment saying what it trains"
