"""`versanet data check` on folders (layout detected) and configs; every configs/data preset instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures_data import MediaCache, make_esc50, make_kinetics, make_ucf101, make_video_folder, make_voc2007
from versanet.data.check import data_check, load_datamodule

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted((REPO / "configs" / "data").rglob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=[str(p.relative_to(REPO / "configs" / "data")) for p in PRESETS])
def test_every_data_preset_instantiates(preset: Path) -> None:
    """Overlays (``data:`` at the top, possibly naming a data-module file) and data-module files (``class_path`` at the top)."""
    dm = load_datamodule(str(preset))
    text = preset.read_text()
    nested = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("data:")), "")
    source = (preset.parent / nested).read_text() if nested.endswith(".yaml") else text
    expected = next(line.split(":", 1)[1].strip() for line in source.splitlines() if line.strip().startswith("class_path:"))
    assert type(dm).__name__ == expected
    assert dm.transforms


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("check")
    media = MediaCache(base / "_media")
    media.folder.mkdir()
    roots = {k: base / k for k in ("ucf", "esc", "voc", "kinetics", "folder")}
    make_ucf101(roots["ucf"], media)
    make_esc50(roots["esc"])
    make_voc2007(roots["voc"])
    make_kinetics(roots["kinetics"], media)
    make_video_folder(roots["folder"], media, captions=[["clip00", 0.0, 1.0, "early"], ["clip01", 7.0, 9.0, "too late"]])
    return roots


def test_layouts_are_detected_and_checked(folders: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    ucf = data_check(str(folders["ucf"]), workers=1)
    assert ucf.name.startswith("UCF101DataModule") and ucf.files == 24 and ucf.count("no_audio") == 24  # the miniature avis are silent
    esc = data_check(str(folders["esc"]), workers=1)
    assert esc.name.startswith("ESC50DataModule") and esc.files == 10 and esc.count("unreadable") == 0 and esc.count("no_audio") == 0
    voc = data_check(str(folders["voc"]), workers=1)
    assert voc.name.startswith("VOC2007DataModule") and voc.files == 4 and sum(voc.count(k) for k in ("unreadable", "truncated")) == 0
    kin = data_check(str(folders["kinetics"]), workers=1)
    assert kin.count("missing") == 1 and kin.problems["missing"][0][0] == "eeeeeeeeeee_000000_000010"
    folder = data_check(str(folders["folder"]), max_report=1, workers=2)
    assert folder.name.startswith("VideoFolderDataModule") and folder.files == 4
    assert [p for p, _ in folder.problems["captions_outside"]] == [str(folders["folder"] / "videos" / "clip01.mp4")]
    out = capsys.readouterr().out
    assert "listed but not found: 1" in out and "clip01.mp4: 1 caption(s) outside 0-3.00s" in out


def test_check_from_a_config_uses_its_clip_length(folders: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(f"""
data:
  class_path: VideoFolderDataModule
  init_args:
    root: {folders['folder']}
    num_frames: 32
    fps: 10.0
    transforms: {{}}
""")
    report = data_check(str(config), workers=1)
    assert report.clip_seconds == pytest.approx(3.2) and report.count("short") == 4
    with pytest.raises(FileNotFoundError, match="neither a config file nor a folder"):
        data_check(str(tmp_path / "nothing"))
