"""Deflation (docs/method.md, "Deflation"): video network -> image network (versanet.deflation, versanet.models.recalibrate,
versanet.data.datasets.images, VideoStillsDataModule, configs/deflation/recalibrate_toy.yaml)."""

from __future__ import annotations

import copy
import importlib
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters_context
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from versanet import registry
from versanet.checkpoint import CheckpointError
from versanet.data.captioned_video import VideoStillsDataModule
from versanet.data.datasets.images import ImageFolderDataModule, ImageTransform
from versanet.deflation import (
    DeflatedImageEncoder,
    InputInflation,
    deflate,
    deflate_command,
    deflate_conv3d,
    deflate_pool3d,
    load_image_encoder,
    load_pretrained_encoder,
    save_image_encoder,
    static_clip,
)
from versanet.encoders.small import EmbeddingTextEncoder, SmallAudioCNN, SmallVideoCNN
from versanet.graph import FAC
from versanet.models import PretrainModule
from versanet.models.recalibrate import DeflationRecalibration

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "deflation" / "recalibrate_toy.yaml"
MMV_BACKBONE_MODULES = ("small", "s3dg", "tsm_resnet", "r2plus1d")
_BN = nn.modules.batchnorm._BatchNorm


# ----------------------------------------------------------------------------- helpers
def trained_like(encoder: nn.Module, seed: int = 0, clip=(3, 6, 24, 24)) -> nn.Module:
    """Give BN layers non-trivial running statistics and affine parameters, as in a trained network."""
    torch.manual_seed(seed)
    encoder.train()
    with torch.no_grad():
        for _ in range(5):
            encoder(torch.rand(8, *clip))
        for m in encoder.modules():
            if isinstance(m, _BN):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return encoder.eval()


def tiny_video_cnn(seed: int = 0) -> SmallVideoCNN:
    torch.manual_seed(seed)
    return trained_like(SmallVideoCNN(widths=(4, 8), out_dim=16), seed)


ENCODER_CONFIG = {
    "video": {"class_path": "versanet.encoders.small.SmallVideoCNN", "init_args": {"widths": [4, 8], "out_dim": 16}},
    "audio": {"class_path": "versanet.encoders.small.SmallAudioCNN", "init_args": {"widths": [4, 8], "out_dim": 16}},
    "text": {"class_path": "versanet.encoders.small.EmbeddingTextEncoder", "init_args": {"vocab_size": 50, "embed_dim": 8, "out_dim": 16}},
}
GRAPH_CONFIG = {"class_path": "versanet.graph.FAC", "init_args": {"va_dim": 16, "vat_dim": 8}}


def small_encoders() -> dict[str, nn.Module]:
    return {"video": SmallVideoCNN(widths=(4, 8), out_dim=16), "audio": SmallAudioCNN(widths=(4, 8), out_dim=16),
            "text": EmbeddingTextEncoder(vocab_size=50, embed_dim=8, out_dim=16)}


def write_pretrain_checkpoint(path: Path, cli_style: bool = True) -> PretrainModule:
    """A PretrainModule checkpoint without data: ``Trainer.save_checkpoint`` on a connected module.

    ``cli_style``: record the config as LightningCLI does (the module loads with no extra arguments);
    otherwise the checkpoint holds only the scalar hyperparameters, as any Python-built module's does.
    """
    torch.manual_seed(0)
    if cli_style:
        config = {"encoders": ENCODER_CONFIG, "graph": GRAPH_CONFIG, "optimizer": "adam", "lr": 0.002}
        with _given_hyperparameters_context(hparams=config, instantiator="lightning.pytorch.cli.instantiate_module"):
            module = PretrainModule(encoders=small_encoders(), graph=FAC(va_dim=16, vat_dim=8))
    else:
        module = PretrainModule(encoders=small_encoders(), graph=FAC(va_dim=16, vat_dim=8))
    trained_like(module.encoders["video"])
    trainer = L.Trainer(logger=False, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return module


def mmv_video_encoders() -> list[str]:
    """Registered video encoders of the MMV backbone modules that exist (S3D-G, TSM-ResNet, R(2+1)D, small)."""
    for name in MMV_BACKBONE_MODULES:
        try:
            importlib.import_module(f"versanet.encoders.{name}")
        except ModuleNotFoundError:
            pass
    return [n for n in registry.names("encoder")
            if registry.get("encoder", n).input_ndim == 4
            and registry.get("encoder", n).__module__.rsplit(".", 1)[-1] in MMV_BACKBONE_MODULES]


# ----------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("kernel,stride,padding", [
    ((3, 3, 3), (1, 1, 1), (1, 1, 1)),   # the exactness check of docs/method.md
    ((5, 3, 3), (1, 2, 2), (2, 1, 1)),
    ((3, 1, 1), (2, 1, 1), (1, 0, 0)),   # a temporal conv with temporal stride
    ((7, 7, 7), (2, 2, 2), (3, 3, 3)),   # S3D-G's first conv
])
def test_deflated_conv_equals_interior_outputs_on_static_clip(kernel, stride, padding):
    torch.manual_seed(0)
    conv = nn.Conv3d(3, 6, kernel, stride, padding, bias=True).double()
    frames = 12
    image = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    video_out = conv(static_clip(image, frames))  # [B, 6, T', h, w]
    flat = deflate_conv3d(conv)
    assert flat.kernel_size == (1, *kernel[1:]) and flat.padding == (0, *padding[1:]) and flat.stride == (1, *stride[1:])
    image_out = flat(image.unsqueeze(2))  # [B, 6, 1, h, w]
    kt, st, pt = kernel[0], stride[0], padding[0]
    interior = [t for t in range(video_out.shape[2]) if t * st - pt >= 0 and t * st - pt + kt - 1 <= frames - 1]
    assert interior, "the clip is too short to have interior outputs"
    for t in interior:
        torch.testing.assert_close(image_out[:, :, 0], video_out[:, :, t], rtol=1e-12, atol=1e-12)
    boundary = [t for t in range(video_out.shape[2]) if t not in interior]
    assert all(not torch.allclose(image_out[:, :, 0], video_out[:, :, t]) for t in boundary)  # zero padding differs
    # float32: equal to float precision
    conv32, flat32 = copy.deepcopy(conv).float(), copy.deepcopy(flat).float()
    torch.testing.assert_close(flat32(image.float().unsqueeze(2))[:, :, 0], conv32(static_clip(image.float(), frames))[:, :, interior[0]], rtol=1e-5, atol=1e-5)


def test_deflated_conv_keeps_the_original_and_its_settings():
    conv = nn.Conv3d(4, 8, (3, 3, 3), (2, 2, 2), (1, 1, 1), dilation=(2, 1, 1), groups=2, bias=False, padding_mode="replicate")
    weight = conv.weight.detach().clone()
    flat = deflate_conv3d(conv)
    assert conv.kernel_size == (3, 3, 3) and torch.equal(conv.weight, weight)  # not mutated
    assert (flat.stride, flat.padding, flat.dilation, flat.groups, flat.bias, flat.padding_mode) == ((1, 2, 2), (0, 1, 1), (1, 1, 1), 2, None, "replicate")
    torch.testing.assert_close(flat.weight, weight.sum(2, keepdim=True))
    assert flat(torch.randn(1, 4, 1, 9, 9)).shape == (1, 8, 1, 5, 5)
    same = deflate_conv3d(nn.Conv3d(2, 2, 3, padding="same"))
    assert same.padding == "same" and same(torch.randn(1, 2, 1, 7, 7)).shape == (1, 2, 1, 7, 7)


@pytest.mark.parametrize("pool", [nn.MaxPool3d((3, 3, 3), (2, 2, 2), (1, 1, 1)), nn.AvgPool3d(2), nn.MaxPool3d(3, 1, 1)])
def test_deflated_pools(pool):
    flat = deflate_pool3d(pool)
    assert flat.kernel_size[0] == 1 and flat.stride[0] == 1 and flat.padding[0] == 0
    image = torch.randn(2, 3, 8, 8)
    video_out = pool(static_clip(image, 8))
    torch.testing.assert_close(flat(image.unsqueeze(2))[:, :, 0], video_out[:, :, 1])  # an interior output


# ----------------------------------------------------------------------------- deflated networks
def test_deflate_small_video_cnn_runs_on_images_and_leaves_input_alone():
    enc = tiny_video_cnn()
    state = copy.deepcopy(enc.state_dict())
    kernels = [m.kernel_size for m in enc.modules() if isinstance(m, nn.Conv3d)]
    image_net = deflate(enc).eval()
    assert isinstance(image_net, DeflatedImageEncoder) and image_net.out_dim == enc.out_dim == 16
    out = image_net(torch.rand(5, 3, 32, 32))
    assert out.shape == (5, 16) and torch.isfinite(out).all()
    assert image_net.example_input(2).shape == (2, 3, 32, 32)
    assert all(m.kernel_size[0] == 1 for m in image_net.modules() if isinstance(m, nn.Conv3d))
    # the input network is untouched: same modules, same tensors, still a video network
    assert [m.kernel_size for m in enc.modules() if isinstance(m, nn.Conv3d)] == kernels
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in state.items())
    assert enc(torch.rand(2, 3, 4, 32, 32)).shape == (2, 16)
    with pytest.raises(ValueError, match=r"images \[B, 3, H, W\]"):
        image_net(torch.rand(2, 3, 4, 32, 32))


@pytest.mark.parametrize("name", mmv_video_encoders())
def test_deflate_mmv_backbones(name):
    """Every MMV video backbone (contract size) deflates to an image network with its output width."""
    cls = registry.get("encoder", name)
    torch.manual_seed(0)
    enc = cls(**cls.contract_kwargs).eval()
    state = copy.deepcopy(enc.state_dict())
    shifts = [m for m in enc.modules() if "TemporalShift" in type(m).__name__]
    image_net = deflate(enc).eval()
    images = enc.example_input(2).select(2, 0)
    with torch.no_grad():
        out = image_net(images)
    assert out.shape == (2, enc.out_dim) and torch.isfinite(out).all()
    assert all(m.kernel_size[0] == 1 and m.stride[0] == 1 for m in image_net.modules() if isinstance(m, (nn.Conv3d, nn.MaxPool3d, nn.AvgPool3d)))
    deflated_shifts = [m for m in image_net.modules() if "TemporalShift" in type(m).__name__]
    assert len(deflated_shifts) == len(shifts) and not any(m.enabled for m in deflated_shifts)
    assert all(m.enabled for m in shifts)  # the original keeps its shifts on
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in state.items())
    assert type(image_net.encoder) is type(enc)  # same class and forward, only temporal sizes changed


def test_s3dg_tf_same_padding_survives_deflation():
    pytest.importorskip("versanet.encoders.mmv.s3dg")
    cls = registry.get("encoder", "S3DG")
    enc = cls(width_multiplier=0.125, padding="tf_same").eval()
    with torch.no_grad():
        assert deflate(enc)(torch.rand(2, 3, 17, 17)).shape == (2, enc.out_dim)


def test_deflate_hook_and_temporal_shift():
    class TemporalShiftStub(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enabled = True

        def forward(self, x):
            return x.roll(1, dims=2) if self.enabled else x

    class CustomTemporal(nn.Module):
        def forward(self, x):
            return x.cumsum(dim=2)

        def deflate(self) -> nn.Module:
            return nn.Identity()

    net = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), TemporalShiftStub(), CustomTemporal())
    net.out_dim = 4
    image_net = deflate(net)
    assert isinstance(image_net.encoder[2], nn.Identity) and image_net.encoder[1].enabled is False
    assert net[1].enabled is True and isinstance(net[2], CustomTemporal)


def test_input_inflation_equals_video_net_on_repeated_image():
    enc = tiny_video_cnn()
    inflated = InputInflation(enc, num_frames=6).eval()
    images = torch.rand(3, 3, 24, 24)
    with torch.no_grad():
        expected = enc(images.unsqueeze(2).repeat(1, 1, 6, 1, 1))
        torch.testing.assert_close(inflated(images), expected, rtol=0, atol=0)
    assert inflated.out_dim == enc.out_dim and inflated.example_input(2).shape == (2, 3, 32, 32)


# ----------------------------------------------------------------------------- BN recalibration
def _image_loader(n: int, seed: int, batch_size: int, shuffle: bool) -> DataLoader:
    images = torch.rand(n, 3, 20, 20, generator=torch.Generator().manual_seed(seed))
    return DataLoader(TensorDataset(images), batch_size=batch_size, shuffle=shuffle,
                      collate_fn=lambda b: {"image": torch.stack([x[0] for x in b])})


def test_recalibration_lowers_l1_and_trains_only_bn_affine():
    enc = tiny_video_cnn()
    original = copy.deepcopy(enc.state_dict())
    module = DeflationRecalibration(encoder=enc, num_frames=6, lr=0.01)
    bn_names = {f"{m_name}.{p}" for m_name, m in module.student.named_modules() if isinstance(m, _BN) for p in ("weight", "bias")}
    assert {n for n, p in module.student.named_parameters() if p.requires_grad} == bn_names
    student_before = copy.deepcopy(module.student.state_dict())
    val = _image_loader(48, seed=2, batch_size=24, shuffle=False)
    torch.manual_seed(0)
    trainer = L.Trainer(max_steps=30, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, accelerator="cpu", check_val_every_n_epoch=100)
    trainer.fit(module, _image_loader(160, seed=1, batch_size=16, shuffle=True), val)
    before, after = module.val_l1_before, module.evaluate_l1([val])
    print(f"\nheld-out L1 gap: before recalibration {before:.5f}, after {after:.5f}")
    assert before is not None and after < 0.7 * before
    # naive deflation's gap is what DeflationRecalibration measured before training
    naive = deflate(enc).eval()
    images = next(iter(val))["image"]
    with torch.no_grad():
        gap = (naive(images) - enc(static_clip(images, 6))).abs().mean()
    assert gap > 0
    # only BN gamma/beta moved; every other student tensor (and the teacher) is bit-identical
    after_state = module.student.state_dict()
    for name, value in student_before.items():
        if name in bn_names:
            continue
        assert torch.equal(after_state[name], value), name  # conv weights, BN running stats (bn_mode eval)
    assert any(not torch.equal(after_state[n], student_before[n]) for n in bn_names)
    assert all(torch.equal(module.teacher.state_dict()[k], v) for k, v in original.items())
    assert all(torch.equal(enc.state_dict()[k], v) for k, v in original.items())  # the given encoder is untouched


def test_recalibration_modes():
    module = DeflationRecalibration(encoder=tiny_video_cnn(), bn_mode="train")
    module.train()
    assert not module.teacher.training and not any(m.training for m in module.teacher.modules())
    assert all(m.training == isinstance(m, _BN) for m in module.student.modules())
    module.eval()
    assert not any(m.training for m in module.modules())
    module = DeflationRecalibration(encoder=tiny_video_cnn(), bn_mode="eval").train()
    assert not any(m.training for m in module.student.modules())
    with pytest.raises(ValueError, match="exactly one"):
        DeflationRecalibration()
    with pytest.raises(ValueError, match="no BatchNorm"):
        DeflationRecalibration(encoder=_no_bn_encoder())


def _no_bn_encoder() -> nn.Module:
    net = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.AdaptiveAvgPool3d(1), nn.Flatten())
    net.out_dim = 4
    return net


# ----------------------------------------------------------------------------- checkpoints and files
def test_deflate_command_round_trip(tmp_path, capsys):
    ckpt = tmp_path / "pretrain.ckpt"
    module = write_pretrain_checkpoint(ckpt, cli_style=True)
    video = module.encoders["video"].eval()
    images = torch.rand(3, 3, 24, 24)
    for method in ("naive", "inflate"):
        out = tmp_path / f"{method}.pt"
        deflate_command(str(ckpt), str(out), method=method, num_frames=4)
        assert "wrote" in capsys.readouterr().out
        loaded, meta = load_image_encoder(out, with_meta=True)
        assert meta["method"] == method and meta["out_dim"] == 16 and not loaded.training
        expected = deflate(video).eval() if method == "naive" else InputInflation(video, 4).eval()
        with torch.no_grad():
            torch.testing.assert_close(loaded(images), expected(images), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="not found: .*nope.ckpt"):
        deflate_command(str(tmp_path / "nope.ckpt"), str(tmp_path / "x.pt"))
    with pytest.raises(CheckpointError, match="not an image encoder file"):
        torch.save({"x": 1}, tmp_path / "other.pt")
        load_image_encoder(tmp_path / "other.pt")
    # the file is weights and plain data: it loads with torch's weights-only unpickler and records how to rebuild the net
    raw = torch.load(tmp_path / "naive.pt", weights_only=True)
    assert raw["encoder"] == ENCODER_CONFIG["video"] and raw["structure"] == "deflate" and raw["version"] == 2


def test_image_encoder_file_with_weights_that_do_not_fit_is_refused(tmp_path):
    ckpt = tmp_path / "pretrain.ckpt"
    write_pretrain_checkpoint(ckpt)
    deflate_command(str(ckpt), str(tmp_path / "a.pt"))
    data = torch.load(tmp_path / "a.pt", weights_only=True)
    data["encoder"]["init_args"]["out_dim"] = 32
    torch.save(data, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="b.pt: the weights do not fit"):
        load_image_encoder(tmp_path / "b.pt")
    data["encoder"]["class_path"] = "somewhere.unimported.Encoder"
    torch.save(data, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="c.pt: video encoder.class_path names 'somewhere.unimported.Encoder'"):
        load_image_encoder(tmp_path / "c.pt")


def test_pretrained_encoder_comes_from_the_one_checkpoint_loader(tmp_path):
    ckpt = tmp_path / "py.ckpt"
    write_pretrain_checkpoint(ckpt, cli_style=False)
    with pytest.raises(CheckpointError, match="does not record how to build its network"):
        load_pretrained_encoder(ckpt)
    ckpt = tmp_path / "cli.ckpt"
    module = write_pretrain_checkpoint(ckpt, cli_style=True)
    video, config = load_pretrained_encoder(ckpt)
    assert config == ENCODER_CONFIG["video"] and not video.training
    assert all(torch.equal(v, module.encoders["video"].state_dict()[k]) for k, v in video.state_dict().items())
    with pytest.raises(KeyError, match="no 'depth' encoder"):
        load_pretrained_encoder(ckpt, "depth")


def test_recalibration_from_checkpoint_saves_image_encoder(tmp_path):
    ckpt = tmp_path / "pretrain.ckpt"
    module = write_pretrain_checkpoint(ckpt)
    recal = DeflationRecalibration(checkpoint=str(ckpt), num_frames=4)
    assert all(torch.equal(v, module.encoders["video"].state_dict()[k]) for k, v in recal.teacher.state_dict().items())
    path = recal.save_image_encoder(str(tmp_path / "image.pt"))
    loaded = load_image_encoder(path)
    images = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), recal.student.eval()(images), rtol=0, atol=0)


def test_save_image_encoder_does_not_touch_the_module(tmp_path):
    net = deflate(tiny_video_cnn()).train()
    save_image_encoder(net, tmp_path / "a.pt", ENCODER_CONFIG["video"], note="x")
    loaded, meta = load_image_encoder(tmp_path / "a.pt", with_meta=True)
    assert net.training and meta["note"] == "x"
    images = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), net.eval()(images), rtol=0, atol=0)


# ----------------------------------------------------------------------------- image data
def test_image_folder_data_module(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls_name, size in (("cat", (40, 30)), ("dog", (30, 50))):
            folder = tmp_path / split / cls_name
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(folder / f"{i}.png")
    Image.fromarray(rng.integers(0, 255, (30, 40), dtype=np.uint8)).save(tmp_path / "train" / "cat" / "gray.jpg")
    dm = ImageFolderDataModule(root=str(tmp_path), transforms={"image": ImageTransform(crop=24, resize=28)}, batch_size=4, num_workers=0)
    dm.setup("fit")
    assert dm.class_names == ["cat", "dog"] and len(dm.train_set) == 7 and len(dm.val_set) == 6
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (4, 3, 24, 24) and batch["image"].dtype == torch.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["label"].tolist() == [0, 0, 0, 1] and batch["index"].tolist() == [0, 1, 2, 3]
    assert next(iter(dm.train_dataloader()))["image"].shape == (4, 3, 24, 24)


@pytest.fixture(scope="module")
def tiny_toy_root(tmp_path_factory) -> Path:
    from versanet.data.toy import ToyWorldConfig, generate_toy_world

    root = tmp_path_factory.mktemp("toy")
    generate_toy_world(root, ToyWorldConfig(num_train=4, num_val=2, seconds=3.0), workers=1, progress=False)
    return root


def test_toy_frames(tiny_toy_root):
    dm = VideoStillsDataModule(str(tiny_toy_root), {"image": ImageTransform(crop=48, resize=56, augment=False)}, batch_size=3, num_workers=0, frames_per_video=2)
    dm.setup("fit")
    assert len(dm.train_set) == 8 and len(dm.val_set) == 4 and dm.class_names
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (3, 3, 48, 48) and batch["index"].tolist() == [0, 1, 2]
    assert all(0 <= label < dm.num_classes for label in batch["label"].tolist())
    assert not torch.equal(batch["image"][0], batch["image"][1])  # two different moments of the same video


def test_recalibrate_toy_config_runs(tmp_path, tiny_toy_root):
    """`versanet fit --config configs/deflation/recalibrate_toy.yaml --model.init_args.checkpoint PATH` (shortened)."""
    from versanet.cli import main

    ckpt = tmp_path / "pretrain.ckpt"
    write_pretrain_checkpoint(ckpt)
    output = tmp_path / "image_encoder.pt"
    main([
        "fit", "--config", str(CONFIG), "--model.init_args.checkpoint", str(ckpt),
        "--data.init_args.root", str(tiny_toy_root), "--data.init_args.num_workers", "0",
        "--data.init_args.batch_size", "4", "--data.init_args.frames_per_video", "2",
        "--trainer.max_steps", "3", "--trainer.default_root_dir", str(tmp_path / "runs"),
        "--trainer.enable_progress_bar", "false", "--model.init_args.output", str(output),
    ])
    image_net, meta = load_image_encoder(output, with_meta=True)
    assert meta["method"] == "deflation" and meta["val_l1_before"] is not None
    assert image_net(torch.rand(2, 3, 48, 48)).shape == (2, 16)
