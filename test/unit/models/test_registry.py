"""`intradp_ros.models.build`: names, options, input specs."""

import pytest
import torch
import torch.fx

from intradp_ros.models import available_models, build


@pytest.mark.parametrize(
    "name,options,shape",
    [
        ("kapao_s6", {}, (1, 3, 1280, 1280)),
        ("kapao_m6", {"input_size": (960, 1280)}, (1, 3, 960, 1280)),
        ("sconet", {}, (1, 1, 256, 32, 256)),
        ("sconet_ds", {"batch": 2}, (2, 1, 256, 32, 256)),
    ],
)
def test_builds_in_eval_mode_with_the_input_spec(name, options, shape):
    model = build(name, **options)
    assert model.model_name == name and not model.training
    assert model.input_spec.shape == shape and model.input_spec.dtype == torch.uint8


def test_input_spec_examples_and_sizes():
    spec = build("sconet").input_spec
    x = spec.example(seed=3)
    assert set(x.unique().tolist()) == {0, 1} and spec.nbytes == 256 * 32 * 256
    assert torch.equal(x, spec.example(seed=3))
    assert build("kapao_s6").input_spec.nbytes == 3 * 1280 * 1280


def test_torchvision_models_take_uint8_and_trace():
    model = build("torchvision:resnet18", input_size=(64, 64), num_classes=10)
    x = model.input_spec.example()
    assert x.shape == (1, 3, 64, 64)
    gm = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        assert torch.equal(model(x), gm(x)) and model(x).shape == (1, 10)
    assert "net.fc.weight" in model.state_dict() and "mean" not in model.state_dict()


def test_unknown_names_and_bad_options_are_clear():
    assert "kapao_l6" in available_models() and "sconet" in available_models()
    with pytest.raises(ValueError, match="unknown model 'yolo'"):
        build("yolo")
    with pytest.raises(ValueError, match="bad options for model 'sconet'"):
        build("sconet", input_size=(64, 64))
    with pytest.raises(ValueError, match="unknown torchvision model"):
        build("torchvision:not_a_model")
    with pytest.raises(ValueError, match="multiples of 64"):
        build("kapao_s6", input_size=(1000, 1280))
