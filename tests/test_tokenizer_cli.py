"""`versanet tokenizer train`: a sentencepiece vocabulary from a caption file."""

from __future__ import annotations

import csv

import pytest

from versanet.cli import main
from versanet.data.tokenizer import load_sentencepiece

SENTENCES = [
    "the red circle moves left", "a blue square goes up", "green triangle slides down slowly",
    "stir the onion in the hot pan", "cut the tomato into small pieces", "pour the water into the pot",
]


@pytest.mark.parametrize("fmt", ["csv", "txt"])
def test_tokenizer_train_command(tmp_path, capsys, fmt):
    if fmt == "csv":
        captions = tmp_path / "captions.csv"
        with captions.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["video_id", "start", "end", "text"])
            for i in range(120):
                writer.writerow([f"vid{i % 7}", f"{i * 2.0:.1f}", f"{i * 2.0 + 1.5:.1f}", SENTENCES[i % len(SENTENCES)].upper() + "!"])
    else:
        captions = tmp_path / "captions.txt"
        captions.write_text("\n".join(SENTENCES * 20) + "\n", encoding="utf-8")
    model = tmp_path / "tok" / "spm.model"
    main(["tokenizer", "train", str(captions), str(model), "--vocab_size", "60"])
    assert model.is_file()
    assert "wrote" in capsys.readouterr().out
    sp = load_sentencepiece(model)
    assert 10 < sp.get_piece_size() <= 60
    assert sp.pad_id() == 0 and sp.unk_id() == 1
    ids = sp.encode("the red circle moves left")
    assert ids and all(1 < i < sp.get_piece_size() for i in ids)  # known words: no unk, no pad
    assert sp.decode(ids) == "the red circle moves left"


def test_tokenizer_train_missing_captions(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        main(["tokenizer", "train", str(tmp_path / "nope.csv"), str(tmp_path / "m.model")])
