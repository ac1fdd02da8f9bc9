"""Issue "Architecture" item 2: one front door for settings. eval, bench, export and predict take a typed config
like train does: their flags are generated from it (each default written once), ``key=value`` settings after the
flags set the same fields with the same checks, unknown keys get a suggestion, and the job functions' keyword
defaults are the schema's."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from kdmark.cli import parse
from kdmark.cli.flags import config_from_args
from kdmark.config import BenchConfig, ConfigError, EvalConfig, ExportConfig, PredictConfig


def cfg(argv):
    return config_from_args(parse(argv))


def test_flags_come_from_the_schema_and_give_its_defaults():
    assert cfg(["eval", "m.ckpt", "--data", "d"]) == EvalConfig(model="m.ckpt", data="d")
    assert cfg(["bench", "m.ckpt"]) == BenchConfig(model="m.ckpt")
    assert cfg(["export", "m.ckpt"]) == ExportConfig(model="m.ckpt")
    assert cfg(["predict", "a.jpg"]) == PredictConfig(inputs=("a.jpg",))
    got = cfg(["bench", "m", "--no-int8", "--runs", "3", "--max-faces", "9", "--vs", "dlib", "--tta", "flip"])
    assert (got.int8, got.runs, got.max_faces, got.vs, got.tta) == (False, 3, 9, "dlib", "flip")
    got = cfg(["predict", "m.onnx", "a.jpg", "--no-smooth", "--min-face", "20", "--detector", "dlib"])
    assert (got.inputs, got.smooth, got.min_face, got.detector) == (("m.onnx", "a.jpg"), False, 20.0, "dlib")
    assert cfg(["export", "m", "--int8", "--opset", "18"]).int8 is True


def test_key_value_settings_follow_the_flags_with_the_same_checks(tmp_path, monkeypatch):
    got = cfg(["eval", "m", "--data", "d", "threshold=0.1", "batch_size=8", "tta=flip", "split=null"])
    assert (got.threshold, got.batch_size, got.tta, got.split) == (0.1, 8, "flip", None)
    got = cfg(["predict", "a.jpg", "tta=flip", "smooth=false", "--json", "-"])  # taken back from the inputs
    assert (got.inputs, got.tta, got.smooth, got.json) == (("a.jpg",), "flip", False, "-")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tta=flip").write_bytes(b"")  # a file of that name is an input, not a setting
    assert cfg(["predict", "tta=flip"]).inputs == ("tta=flip",)
    with pytest.raises(ConfigError, match="unknown key 'treshold'; did you mean 'threshold'"):
        cfg(["eval", "m", "--data", "d", "treshold=0.1"])
    with pytest.raises(ConfigError, match=r"threshold=2: must be in \(0, 1\]"):
        cfg(["eval", "m", "--data", "d", "threshold=2"])
    with pytest.raises(ConfigError, match="batch_size=0: must be at least 1"):
        cfg(["predict", "a.jpg", "batch_size=0"])
    with pytest.raises(ConfigError, match="'flop' is not one of 'none', 'flip'"):
        cfg(["bench", "m", "tta=flop"])


def test_job_defaults_are_the_schemas():
    """A default is written once: the functions behind the verbs take theirs from the config class."""
    from kdmark.deploy.bench import bench
    from kdmark.deploy.export import export_onnx, export_onnx_int8
    from kdmark.deploy.predict import Predictor
    from kdmark.deploy.predict_files import predict_files
    from kdmark.jobs.evaluate import evaluate
    from kdmark.schemes import TTA

    pairs = [(evaluate, EvalConfig, {"data_format": "format"}), (bench, BenchConfig, {}),
             (export_onnx, ExportConfig, {}), (export_onnx_int8, ExportConfig, {"faces": "calibration_faces"}),
             (predict_files, PredictConfig, {}),
             (Predictor, PredictConfig, {"detector": "-"})]  # Predictor takes a detector object too
    for fn, cls, renamed in pairs:
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        checked = 0
        for name, p in inspect.signature(fn).parameters.items():
            key = renamed.get(name, name)
            if key in fields and p.default is not inspect.Parameter.empty and fields[key] not in (None, ""):
                assert p.default == fields[key], (fn.__name__, name)
                checked += 1
        assert checked >= 2, fn.__name__
    for cls in (EvalConfig, BenchConfig, PredictConfig):  # the schemas' TTA choices are the schemes' TTA
        assert set(inspect.get_annotations(cls, eval_str=True)["tta"].__args__) == set(TTA)
