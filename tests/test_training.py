"""Models, losses and the training loop: every architecture/loss trains a step; training is
deterministic on CPU; a train stage killed with SIGKILL resumes to the same model file."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_project import build_stage_inputs, checkout_env, train_command

from porescope.segmentation import losses

from porescope.segmentation import models

from porescope.segmentation import training

ARCHS = models.TESTED_ARCHITECTURES
LOSSES = ["bce", "dice", "focal", "jaccard", "tversky", "bce+dice", {"focal": 1.0, "dice": 0.5}]


def _tiny_data(n: int, classes: int, seed: int = 0, size: int = 64) -> training.SegmentationData:
    """Dark discs on a bright noisy background; class 2 (if any) is a 2-px ring on each disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for _ in range(n):
        cy, cx, r = rng.uniform(16, size - 16, 2).tolist() + [rng.uniform(6, 12)]
        d = np.hypot(yy - cy, xx - cx)
        mask = (d <= r).astype(np.uint8)
        if classes > 2:
            mask[(d <= r) & (d > r - 2)] = 2
        img = np.where(d <= r, 40, 180) + rng.normal(0, 10, (size, size))
        images.append(np.clip(img, 0, 255).astype(np.uint8))
        masks.append(mask)
    return training.SegmentationData(np.stack(images), np.stack(masks))


@pytest.mark.parametrize("arch", ARCHS)
def test_each_architecture_builds_and_takes_a_training_step(arch: str) -> None:
    torch.manual_seed(0)
    config = models.model_config(arch, "resnet18", 1, decoder_channels=None)
    model = models.build_model(config)
    data = _tiny_data(2, 2)
    loss_fn = losses.build_loss("bce+dice", 1)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.from_numpy(data.images[:, None] / 255.0).float()
    y = torch.from_numpy(data.masks.astype(np.int64))
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "no weight changed"


def test_full_resolution_skip_sees_single_pixels_and_keeps_smp_names(tmp_path: Path) -> None:
    """``full_res_channels`` adds convolutions on the input at full resolution: a change of one
    input pixel then reaches the output at that pixel through a path that does not pass the
    half-resolution decoder. Parameter names of the smp part stay smp's, so a plain model file
    initialises everything but ``full_res.*``; the file round-trips; 0 is the plain smp model."""
    kw = dict(encoder_depth=3, decoder_channels=[32, 16, 8])
    assert "full_res_channels" not in models.model_config("Unet", "resnet18", 1, **kw)
    assert type(models.build_model(models.model_config("Unet", "resnet18", 1, **kw))).__name__ == "Unet"
    config = models.model_config("Unet", "resnet18", 1, full_res_channels=8, **kw)
    torch.manual_seed(0)
    net = models.build_model(config).eval()
    # the stem's contribution alone: the fuse sees [decoder, stem]; zeroing the decoder part of
    # the fuse weights leaves a model whose output at a pixel depends on inputs within 3 px
    with torch.no_grad():
        net.full_res["fuse"][0].weight[:, :8] = 0
    x = torch.rand(1, 1, 32, 32)
    y = x.clone()
    y[0, 0, 16, 16] += 1.0
    diff = (net(y) - net(x)).abs()[0, 0]
    assert diff[16, 16] > 0 and diff[:12].max() == 0 and diff[21:].max() == 0
    plain_config = models.model_config("Unet", "resnet18", 1, **kw)
    plain = tmp_path / "plain.pt"
    models.save_model_file(plain, models.build_model(plain_config), plain_config, {"0": "background", "1": "pore"})
    moved = models.init_from_model(models.build_model(config), plain)
    assert moved["skipped"] == [] and len(moved["copied"]) == len(models.build_model(plain_config).state_dict())
    path = tmp_path / "full_res.pt"
    models.save_model_file(path, net, config, {"0": "background", "1": "pore"})
    loaded = models.load_model(path)
    assert loaded.config["full_res_channels"] == 8
    with torch.no_grad():
        assert torch.equal(loaded.model(x), net(x))
    with pytest.raises(ValueError, match="channels must be >= 1"):
        models.FullResolutionSkip(models.build_model(plain_config), 1, 0)


@pytest.mark.parametrize("arch", ARCHS)
def test_full_resolution_skip_builds_or_names_the_architecture(arch: str) -> None:
    """Decoders at full resolution take the skip; those that upsample in the head (FPN,
    DeepLabV3Plus) are refused when the model is built, not at the first forward pass."""
    config = models.model_config(arch, "resnet18", 1, full_res_channels=8)
    if arch in ("FPN", "DeepLabV3Plus"):
        with pytest.raises(ValueError, match=f"{arch} upsamples in its head"):
            models.build_model(config)
        return
    net = models.build_model(config).eval()
    with torch.no_grad():
        assert tuple(net(torch.zeros(1, 1, 64, 64)).shape) == (1, 1, 64, 64)


@pytest.mark.parametrize("spec", LOSSES, ids=str)
@pytest.mark.parametrize("n_classes", [1, 3])
def test_each_loss_gives_a_finite_gradient(spec, n_classes: int) -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, n_classes, 32, 32, requires_grad=True)
    target = torch.randint(0, max(n_classes, 2), (2, 32, 32))
    weights = [0.2, 0.8] if n_classes == 1 else [0.2, 0.2, 0.8]
    loss = losses.build_loss(spec, n_classes, weights)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_loss_is_lower_for_the_right_answer() -> None:
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[:, 4:12, 4:12] = 1
    good = torch.where(target[:, None] == 1, 8.0, -8.0)
    for spec in ("bce", "dice", "focal", "jaccard", "tversky"):
        fn = losses.build_loss(spec, 1)
        assert fn(good, target) < fn(-good, target), spec


def test_class_weights_scale_the_cross_entropy() -> None:
    logits = torch.zeros(1, 3, 8, 8)
    target = torch.full((1, 8, 8), 2)
    plain = losses.build_loss("ce", 3)(logits, target)
    border_heavy = losses.build_loss("ce", 3, [0.2, 0.2, 0.8])(logits, target)
    # torch's weighted mean divides by the weights of the targets: all pixels are class 2 here
    assert torch.allclose(plain, border_heavy)
    mixed = target.clone()
    mixed[:, :4] = 0
    logits[:, 2] = 5.0  # confident "border" everywhere: wrong on the class-0 half
    assert losses.build_loss("ce", 3, [1.0, 1.0, 4.0])(logits, mixed) < losses.build_loss("ce", 3)(logits, mixed)


@pytest.mark.parametrize("bad", ["dice+hinge", {}, {"dice": -1.0}, 3])
def test_bad_loss_spec_is_a_clear_error(bad) -> None:
    with pytest.raises(ValueError, match="loss"):
        losses.parse_loss_spec(bad)


def _fit(seed: int, data, val, **kw) -> training.TrainResult:
    torch.manual_seed(seed)
    model = models.build_model(models.model_config("Unet", "resnet18", kw.pop("classes", 1),
                                                   decoder_channels=[16, 16, 16, 16, 16]))
    cfg = training.TrainConfig(epochs=2, batch_size=2, lr=1e-3, seed=seed, **kw)
    return training.fit(model, losses.build_loss("bce+dice", 1), data, val, cfg, n_classes=1, progress=False)


def test_training_is_deterministic_on_cpu() -> None:
    data, val = _tiny_data(6, 2, seed=1), _tiny_data(2, 2, seed=2)
    a, b = _fit(3, data, val), _fit(3, data, val)
    assert a.history == b.history
    assert all(torch.equal(a.best_state[k], b.best_state[k]) for k in a.best_state)
    c = _fit(4, data, val)
    assert any(not torch.equal(a.best_state[k], c.best_state[k]) for k in a.best_state)


def test_best_state_is_the_best_epoch_copy_not_the_final_weights(monkeypatch) -> None:
    data, val = _tiny_data(6, 2, seed=1), _tiny_data(2, 2, seed=2)
    ious = iter([0.5, 0.9, 0.6])  # epoch 1 is the best; training goes on after it
    monkeypatch.setattr(training, "validation_scores",
                        lambda *a, **k: {"loss": 1.0, "iou": next(ious), "dice": 0.5})
    torch.manual_seed(0)
    model = models.build_model(models.model_config("Unet", "resnet18", 1, decoder_channels=[16] * 5))
    snapshots = {}
    cfg = training.TrainConfig(epochs=3, batch_size=2, lr=1e-2, seed=0)
    result = training.fit(model, losses.build_loss("bce", 1), data, val, cfg, n_classes=1, progress=False,
                          on_epoch=lambda e, row: snapshots.__setitem__(e, {k: v.clone() for k, v in
                                                                             model.state_dict().items()}))
    assert result.best_epoch == 1
    assert all(torch.equal(result.best_state[k], snapshots[1][k]) for k in snapshots[1])
    final = model.state_dict()
    assert any(not torch.equal(result.best_state[k], final[k]) for k in final)


@pytest.mark.parametrize("scheduler", ["none", "step", "plateau", "cosine"])
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_optimisers_and_schedulers_run(optimizer: str, scheduler: str) -> None:
    data, val = _tiny_data(4, 2, seed=1), _tiny_data(2, 2, seed=2)
    result = _fit(0, data, val, optimizer=optimizer, scheduler=scheduler, step_size=1)
    assert result.epochs_run == 2 and np.isfinite(result.history[-1]["train_loss"])


def test_early_stopping_stops_after_patience_epochs_without_gain(monkeypatch) -> None:
    data, val = _tiny_data(4, 2, seed=1), _tiny_data(2, 2, seed=2)
    monkeypatch.setattr(training, "validation_scores", lambda *a, **k: {"loss": 1.0, "iou": 0.5, "dice": 0.5})
    torch.manual_seed(0)
    model = models.build_model(models.model_config("Unet", "resnet18", 1, decoder_channels=[16] * 5))
    cfg = training.TrainConfig(epochs=30, batch_size=2, lr=1e-3, seed=0, early_stopping=2)
    result = training.fit(model, losses.build_loss("bce", 1), data, val, cfg, n_classes=1, progress=False)
    assert result.stopped_early and result.epochs_run == 3 and result.best_epoch == 0


# --- the train stage as DVC runs it: resume after kill -9 equals an uninterrupted run -------------

@pytest.fixture(scope="module")
def stage_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stage_inputs(tmp_path_factory.mktemp("train_inputs"),
                              {"augment": {"size": 48}, "train": {"epochs": 4, "batch_size": 8}})


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_killed_train_resumes_to_the_same_model(stage_inputs: Path) -> None:
    env = checkout_env(TQDM_DISABLE="1")
    full = subprocess.run(train_command("u/model.pt", "u/resume.pt", "u/live", "u/train.json"), cwd=stage_inputs,
                          env=env, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-3000:]

    cmd = train_command("r/model.pt", "r/resume.pt", "r/live", "r/train.json")
    proc = subprocess.Popen(cmd, cwd=stage_inputs, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    resume = stage_inputs / "r/resume.pt"
    deadline = time.time() + 300
    while not resume.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)  # as a power cut or OOM killer would
    proc.wait()
    assert not (stage_inputs / "r/model.pt").exists()

    again = subprocess.run(cmd, cwd=stage_inputs, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed after epoch" in again.stderr
    assert _sha(stage_inputs / "r/model.pt") == _sha(stage_inputs / "u/model.pt")
    assert not resume.exists(), "a finished run removes its resume file (so dvc repro -f retrains)"
    assert (stage_inputs / "r/train.json").read_bytes() == (stage_inputs / "u/train.json").read_bytes()
    for tsv in (stage_inputs / "u/live/plots/metrics").glob("*.tsv"):  # curves replayed, not lost
        assert (stage_inputs / "r/live/plots/metrics" / tsv.name).read_bytes() == tsv.read_bytes()


def test_resume_file_is_used_only_with_its_own_fingerprint(tmp_path: Path) -> None:
    data, val = _tiny_data(4, 2, seed=1), _tiny_data(2, 2, seed=2)
    torch.manual_seed(0)
    model = models.build_model(models.model_config("Unet", "resnet18", 1, decoder_channels=[16] * 5))
    cfg = training.TrainConfig(epochs=1, batch_size=2, lr=1e-3, seed=0)
    training.fit(model, losses.build_loss("bce", 1), data, val, cfg, n_classes=1, progress=False,
                 resume_path=tmp_path / "r.pt", fingerprint="params-and-data-A")
    assert training.load_resume(tmp_path / "r.pt", "params-and-data-A")["epoch"] == 0
    assert training.load_resume(tmp_path / "r.pt", "params-and-data-B") is None  # changed config: fresh start
    (tmp_path / "torn.pt").write_bytes(b"not a checkpoint")
    assert training.load_resume(tmp_path / "torn.pt", "params-and-data-A") is None


# --- model files: every structural problem is a ModelFileError naming the file --------------------

@pytest.fixture(scope="module")
def model_payload(tmp_path_factory: pytest.TempPathFactory) -> dict:
    torch.manual_seed(0)
    config = models.model_config("Unet", "resnet18", 1, decoder_channels=[16] * 5)
    path = tmp_path_factory.mktemp("model") / "good.pt"
    models.save_model_file(path, models.build_model(config), config, {"0": "background", "1": "pore"},
                           {"threshold": 0.42})
    return torch.load(path, weights_only=True)


def _broken(tmp_path: Path, payload: dict, **change) -> Path:
    """``payload`` with the top-level keys in ``change`` replaced (``None`` = removed), saved."""
    bad = {k: v for k, v in payload.items() if change.get(k, 0) is not None}
    bad.update({k: v for k, v in change.items() if v is not None})
    path = tmp_path / "broken.pt"
    torch.save(bad, path)
    return path


def _fails(path: Path, *words: str) -> None:
    with pytest.raises(models.ModelFileError) as err:
        models.load_model(path)
    assert str(path) in str(err.value)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_a_good_model_file_loads_with_its_threshold(tmp_path: Path, model_payload: dict) -> None:
    loaded = models.load_model(_broken(tmp_path, model_payload))
    model, payload = loaded  # the unpacking the measure and validate code uses
    assert model is loaded.model and payload["config"] == loaded.config
    assert loaded.threshold == 0.42 and loaded.class_names == {"0": "background", "1": "pore"}


def test_model_file_not_a_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"this is not a model")
    _fails(path, "not a porescope model file")
    (tmp_path / "empty.pt").write_bytes(b"")
    _fails(tmp_path / "empty.pt", "not a porescope model file (empty or truncated)")


def test_model_file_with_pickled_objects_never_advises_unsafe_loading(tmp_path: Path) -> None:
    """torch's message for a file weights_only refuses advises weights_only=False, i.e. running
    the file's code: the error says what is wrong instead."""
    import pickle

    path = tmp_path / "model.onnx"
    torch.save({"net": pickle.PickleError("not a tensor")}, path)   # a pickled non-tensor object
    with pytest.raises(models.ModelFileError) as err:
        models.load_model(path)
    text = str(err.value)
    assert "weights_only" not in text and "arbitrary code" not in text
    assert "holds something other than plain tensors" in text and "ONNX export" in text


def test_model_file_not_a_porescope_model(tmp_path: Path, model_payload: dict) -> None:
    _fails(_broken(tmp_path, model_payload, format=None), "not a porescope model file")


def test_model_file_missing_config(tmp_path: Path, model_payload: dict) -> None:
    _fails(_broken(tmp_path, model_payload, config=None), "missing 'config'")


def test_model_file_unknown_architecture(tmp_path: Path, model_payload: dict) -> None:
    _fails(_broken(tmp_path, model_payload, config={**model_payload["config"], "arch": "NoSuchNet"}),
           "NoSuchNet")


def test_model_file_unknown_encoder(tmp_path: Path, model_payload: dict) -> None:
    _fails(_broken(tmp_path, model_payload, config={**model_payload["config"], "encoder": "resnet_nope"}),
           "resnet_nope")


def test_model_file_config_without_classes(tmp_path: Path, model_payload: dict) -> None:
    config = {k: v for k, v in model_payload["config"].items() if k != "classes"}
    _fails(_broken(tmp_path, model_payload, config=config), "config.classes")


def test_model_file_missing_state_dict(tmp_path: Path, model_payload: dict) -> None:
    _fails(_broken(tmp_path, model_payload, state_dict=None), "missing 'state_dict'")


def test_model_file_state_dict_of_non_tensors(tmp_path: Path, model_payload: dict) -> None:
    state = {k: v.tolist() for k, v in list(model_payload["state_dict"].items())[:2]}
    _fails(_broken(tmp_path, model_payload, state_dict=state), "is not a tensor")


def test_model_file_weights_that_do_not_fit(tmp_path: Path, model_payload: dict) -> None:
    state = dict(list(model_payload["state_dict"].items())[:-2])  # head weights missing
    _fails(_broken(tmp_path, model_payload, state_dict=state), "weights do not fit")


@pytest.mark.parametrize("threshold", ["high", None, [0.5]], ids=str)
def test_model_file_non_numeric_threshold(tmp_path: Path, model_payload: dict, threshold) -> None:
    _fails(_broken(tmp_path, model_payload, meta={"threshold": threshold}), "meta.threshold")


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5, -0.2, float("nan")], ids=str)
def test_model_file_threshold_out_of_range(tmp_path: Path, model_payload: dict, threshold: float) -> None:
    _fails(_broken(tmp_path, model_payload, meta={"threshold": threshold}), "meta.threshold")


def test_model_file_missing_class_names(tmp_path: Path, model_payload: dict) -> None:
    _fails(_broken(tmp_path, model_payload, class_names=None), "class_names")


def test_model_file_wrong_class_count(tmp_path: Path, model_payload: dict) -> None:
    names = {"0": "background", "1": "interior", "2": "border"}  # three classes, one output channel
    _fails(_broken(tmp_path, model_payload, class_names=names), "class_names", "config.classes = 1")


def test_model_file_problems_reach_init_from(tmp_path: Path, model_payload: dict) -> None:
    """train.init_from reads the file through the same checks."""
    torch.manual_seed(0)
    model = models.build_model(model_payload["config"])
    with pytest.raises(models.ModelFileError, match="missing 'state_dict'"):
        models.init_from_model(model, _broken(tmp_path, model_payload, state_dict=None))


# --- the train params group --------------------------------------------------------------------------

def test_train_params_defaults_are_the_params_yaml_values() -> None:
    import yaml

    from porescope.config import parse_group
    from porescope.segmentation.train_model import TrainParams

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["train"]
    assert parse_group(TrainParams, raw, group="train") == TrainParams()


def test_train_param_typo_fails_naming_the_key_it_meant(tmp_path: Path) -> None:
    """``train.epoch: 50`` used to train the default 6 epochs without a word."""
    import yaml

    from porescope.config import ParamsError
    from stages import train as train_stage

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 0, "train": {"epoch": 50}}))
    argv = ["--params", str(params), *[a for name in ("augmented", "ingested", "split", "model", "resume", "live",
                                                      "metrics") for a in (f"--{name}", str(tmp_path / name))]]
    with pytest.raises(ParamsError, match=r"train\.epoch: unknown parameter; did you mean 'train\.epochs'\?"):
        train_stage.main(argv)
    params.write_text(yaml.safe_dump({"seed": 0, "train": {"loss": "dice+hinge"}}))
    with pytest.raises(ParamsError, match=r"train\.loss: unknown loss term"):
        train_stage.main(argv)
    assert not (tmp_path / "model").exists() and not (tmp_path / "live").exists()


def test_load_data_reads_samples_in_order_and_val_tiles_by_id(tmp_path: Path) -> None:
    """Train data = the augmented stacks row for row; val data = the val tiles' rows of the
    ingest stacks, found through ingest's tiles.csv, in the split manifest's order (which here
    differs from the stacks' order)."""
    import pandas as pd

    from porescope.io.tables import PipelineDataError
    from porescope.segmentation.train_model import load_data

    rng = np.random.default_rng(0)
    ingested, split, augmented = (tmp_path / n for n in ("ingested", "split", "augmented"))
    for folder in (ingested / "tiles", split, augmented):
        folder.mkdir(parents=True)
    ids = [f"t{k}" for k in range(6)]
    tiles = rng.integers(0, 256, (6, 8, 8), dtype=np.uint8)
    pd.DataFrame({"tile_id": ids}).to_csv(ingested / "tiles.csv", index=False)
    np.save(ingested / "tiles" / "images.npy", tiles)
    np.save(ingested / "tiles" / "masks.npy", tiles // 128)
    pd.DataFrame({"tile_id": ["t5", "t0", "t3", "t1"], "split": ["val", "train", "val", "test"]}).to_csv(
        split / "tiles.csv", index=False)
    samples = rng.integers(0, 256, (3, 8, 8), dtype=np.uint8)
    pd.DataFrame({"i": [0, 1, 2], "tile_id": ["t0"] * 3}).to_csv(augmented / "samples.csv", index=False)
    np.save(augmented / "images.npy", samples)
    np.save(augmented / "masks.npy", samples // 200)
    train, val = load_data(augmented, ingested, split)
    np.testing.assert_array_equal(train.images, samples)
    np.testing.assert_array_equal(train.masks, samples // 200)
    np.testing.assert_array_equal(val.images, tiles[[5, 3]])
    np.testing.assert_array_equal(val.masks, tiles[[5, 3]] // 128)
    pd.DataFrame({"i": [0, 1], "tile_id": ["t0"] * 2}).to_csv(augmented / "samples.csv", index=False)
    with pytest.raises(PipelineDataError, match=r"images\.npy: holds 3 tiles but its table has 2 rows"):
        load_data(augmented, ingested, split)
