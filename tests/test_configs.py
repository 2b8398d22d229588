"""Every shipped config parses (the full resolved config prints) and the paper configs state the paper's numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from versanet.cli import main

REPO = Path(__file__).resolve().parents[1]
RUNNABLE = sorted(
    p for p in [*REPO.glob("configs/**/*.yaml"), *REPO.glob("plugins/*/configs/*.yaml")]
    if not p.name.startswith("data_") and "suites" not in p.parts
)


def print_config(path: Path, capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(path), "--print_config"])
    assert exit_info.value.code in (0, None)
    return capsys.readouterr().out


@pytest.mark.parametrize("path", RUNNABLE, ids=[str(p.relative_to(REPO)) for p in RUNNABLE])
def test_config_parses(path: Path, capsys: pytest.CaptureFixture) -> None:
    out = print_config(path, capsys)
    assert "model:" in out and "data:" in out


@pytest.mark.parametrize("name", ["fac_s3dg", "fac_tsm50", "fac_tsm50x2", "shared_s3dg", "disjoint_s3dg", "va_s3dg", "va_r2plus1d18"])
def test_mmv_configs_state_the_paper_hyperparameters(name: str, capsys: pytest.CaptureFixture) -> None:
    out = print_config(REPO / "configs" / "mmv" / f"{name}.yaml", capsys)
    for fact in ("lr: 0.002", "optimizer: adam", "num_frames: 32", "fps: 10.0", "crop: 200", "resize: 224",
                 "sample_rate: 48000", "n_mels: 80", "n_fft: 2048", "hop_length: 1024", "f_max: 7600.0",
                 "temperature: 0.07", "max_steps: 500000", "flip_prob: 0.5", "hue: 0.2"):
        assert fact in out, f"{name}: {fact}"
    if not name.startswith("va_"):
        assert "num_candidates: 4" in out and "max_tokens: 16" in out and "Word2VecTextEncoder" in out
    if name.startswith("fac"):
        assert "va_dim: 512" in out and "vat_dim: 256" in out


def test_a_nested_data_file_with_a_bad_name_is_caught(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("class_path: CaptionedVideoDataModul\ninit_args: {root: x, transforms: {}}\n")
    cfg = tmp_path / "main.yaml"
    cfg.write_text((REPO / "configs" / "mmv" / "va_s3dg.yaml").read_text().replace("data: data_howto100m_va.yaml", "data: data.yaml"))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(cfg)])
    assert "data.yaml: data: unknown class_path 'CaptionedVideoDataModul'; did you mean: CaptionedVideoDataModule" in str(exit_info.value.code)
