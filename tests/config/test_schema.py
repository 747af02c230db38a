"""UPSConfig: playbook defaults, frozen sections, derived sizes, and every cross-field check naming its field."""

from __future__ import annotations

import pydantic
import pytest

from ups.config import UPSConfig
from ups.config.loader import validate_config
from ups.errors import UserInputError


def error_of(data: dict) -> str:
    with pytest.raises(UserInputError) as info:
        validate_config(data, source="cfg.yaml")
    return str(info.value)


def path_of(message: str) -> str:
    """The dotted path in ``cfg.yaml: <path>: <reason>``."""
    source, path, _ = message.split(": ", 2)
    assert source == "cfg.yaml"
    return path


def test_defaults_follow_the_playbook_rules_of_thumb():
    cfg = UPSConfig()
    opt = cfg.stages.operator.optimizer
    assert (opt.name, opt.betas, opt.weight_decay) == ("adamw", (0.9, 0.95), 0.01)
    assert cfg.stages.operator.scheduler.warmup_ratio == 0.05
    assert cfg.training.ema_decay == 0.9995
    assert cfg.training.grad_clip == 1.0
    assert cfg.training.horizon_curriculum == (4, 8, 16, 32)
    loss = cfg.training.loss
    assert (loss.task, loss.edge, loss.conservation) == (1.0, 1e-3, 1e-3)
    assert (loss.inverse_encode, loss.inverse_decode) == (0.5, 0.5)
    assert (cfg.diffusion.cadence_steps, cfg.diffusion.steps, cfg.diffusion.guidance_lambda) == (16, 2, 1.0)
    assert cfg.stages.diff_residual.optimizer.weight_decay == 0.02  # diffusion backbones: 0.02-0.05
    assert cfg.stages.diff_residual.grad_clip == 0.8  # diffusion: 0.5-0.8
    assert cfg.eval.horizons == (1, 4, 16) and cfg.eval.splits == ("test",)
    assert cfg.data.size == "small" and cfg.run.device == "auto" and cfg.run.model == "latent_operator"


def test_sections_are_frozen():
    cfg = UPSConfig()
    with pytest.raises(pydantic.ValidationError):
        cfg.training.batch_size = 3


def test_latent_dim_fills_the_sizes_that_must_match_it():
    cfg = UPSConfig.model_validate({"latent": {"dim": 64}, "ttc": {"decoder": {"output_channels": {"u": 1}}}})
    assert cfg.operator.pdet.input_dim == cfg.diffusion.latent_dim == cfg.ttc.decoder.latent_dim == 64
    assert cfg.operator.pdet.hidden_dim == cfg.diffusion.hidden_dim == cfg.latent.decoder.hidden_dim == 64
    assert cfg.ttc.decoder.hidden_dim == 64


def test_ttc_decoder_and_trained_decoder_fill_each_other():
    cfg = UPSConfig.model_validate({"ttc": {"decoder": {"hidden_dim": 96, "num_heads": 6}}})
    assert (cfg.latent.decoder.hidden_dim, cfg.latent.decoder.num_heads) == (96, 6)
    cfg = UPSConfig.model_validate({"latent": {"decoder": {"num_layers": 5}}, "ttc": {"decoder": {}}})
    assert cfg.ttc.decoder.num_layers == 5


def test_diffusion_stage_keeps_its_weight_decay_default_under_a_partial_optimizer():
    cfg = UPSConfig.model_validate({"stages": {"diff_residual": {"optimizer": {"lr": 1e-3}}}})
    assert cfg.stages.diff_residual.optimizer.weight_decay == 0.02
    assert cfg.stages.diff_residual.optimizer.lr == 1e-3
    cfg = UPSConfig.model_validate({"stages": {"diff_residual": {"optimizer": {"weight_decay": 0.05}}}})
    assert cfg.stages.diff_residual.optimizer.weight_decay == 0.05


CROSS_FIELD = {
    "pdet_input_dim": ({"latent": {"dim": 32}, "operator": {"pdet": {"input_dim": 64}}}, "operator.pdet.input_dim"),
    "diffusion_latent_dim": ({"latent": {"dim": 32}, "diffusion": {"latent_dim": 16}}, "diffusion.latent_dim"),
    "ttc_decoder_latent_dim": ({"ttc": {"decoder": {"latent_dim": 16}}}, "ttc.decoder.latent_dim"),
    "ttc_decoder_arch": (
        {"latent": {"decoder": {"num_heads": 8}}, "ttc": {"decoder": {"num_heads": 4}}},
        "ttc.decoder.num_heads",
    ),
    "pdet_heads": ({"operator": {"pdet": {"hidden_dim": 96, "num_heads": 5}}}, "operator.pdet.num_heads"),
    "decoder_heads": ({"latent": {"decoder": {"hidden_dim": 30, "num_heads": 4}}}, "latent.decoder.num_heads"),
    "group_size": ({"latent": {"tokens": 32}, "operator": {"pdet": {"group_size": 64}}}, "operator.pdet.group_size"),
    "u_stages_length": ({"operator": {"pdet": {"depths": [1, 1], "u_stages": [1, 2, 4]}}}, "operator.pdet.u_stages"),
    "u_stages_order": ({"operator": {"pdet": {"u_stages": [1, 4, 2]}}}, "operator.pdet.u_stages"),
    "u_stages_tokens": ({"latent": {"tokens": 30}}, "operator.pdet.u_stages"),
    "beam_width": ({"ttc": {"candidates": 4, "beam_width": 5}}, "ttc.beam_width"),
    "tau_order": ({"ttc": {"sampler": {"tau_range": [0.8, 0.2]}}}, "ttc.sampler.tau_range"),
    "tau_low": ({"ttc": {"sampler": {"tau_range": [0.0, 0.5]}}}, "ttc.sampler.tau_range.0"),
    "tau_high": ({"ttc": {"sampler": {"tau_range": [0.5, 1.0]}}}, "ttc.sampler.tau_range.1"),
    "guidance": ({"diffusion": {"guidance_lambda": 2.5}}, "diffusion.guidance_lambda"),
    "steady_guidance": ({"stages": {"steady_prior": {"guidance_lambda": 3}}}, "stages.steady_prior.guidance_lambda"),
    "horizons": ({"eval": {"rollout_steps": 8, "horizons": [1, 4, 16]}}, "eval.horizons.2"),
    "curriculum": ({"training": {"horizon_curriculum": [8, 4]}}, "training.horizon_curriculum"),
    "student": ({"stages": {"consistency_distill": {"epochs": 0}}}, "stages.consistency_distill.epochs"),
}


@pytest.mark.parametrize("data, path", CROSS_FIELD.values(), ids=CROSS_FIELD.keys())
def test_cross_field_check_names_the_offending_field(data, path):
    assert path_of(error_of(data)) == path


@pytest.mark.parametrize(
    "data",
    [
        {"diffusion": {"guidance_lambda": 2.0}},
        {"ttc": {"candidates": 3, "beam_width": 3}},
        {"latent": {"tokens": 8}, "operator": {"pdet": {"group_size": 8}}},
        {"eval": {"rollout_steps": 16, "horizons": [16]}},
        {"stages": {"consistency_distill": {"epochs": 0}}, "diffusion": {"method": "rectified_flow"}},
        {"operator": {"pdet": {"u_shape": False, "depths": [2], "u_stages": [1, 3]}}},
    ],
)
def test_boundary_values_pass(data):
    UPSConfig.model_validate(data)


def test_wrong_type_names_the_dotted_path():
    message = error_of({"operator": {"pdet": {"num_heads": "six"}}})
    assert path_of(message) == "operator.pdet.num_heads"
    assert "valid integer" in message


def test_unknown_key_names_the_dotted_path_and_lists_valid_keys():
    message = error_of({"training": {"bogus": 1}})
    assert message.startswith("cfg.yaml: training.bogus: unknown key")
    assert "batch_size" in message
    assert error_of({"bogus": {}}).startswith("cfg.yaml: bogus: unknown key (valid: baseline, data, diffusion, eval")


def test_invalid_choice_lists_the_choices():
    message = error_of({"run": {"device": "tpu"}})
    assert path_of(message) == "run.device" and "'cuda'" in message


def test_several_errors_are_counted():
    message = error_of({"run": {"device": "tpu"}, "training": {"bogus": 1, "batch_size": 0}})
    assert message.endswith("(+2 more)")


def test_eval_budget_overrides_rollout_length_per_size():
    cfg = UPSConfig.model_validate({"eval": {"small": {"rollout_steps": 8}}})
    assert cfg.eval.steps_for("small") == 8 and cfg.eval.steps_for("full") == 16
    assert cfg.eval.horizons_for("small") == (1, 4) and cfg.eval.horizons_for("full") == (1, 4, 16)
    assert cfg.eval.small.time_budget_s == 3600 and cfg.eval.full.time_budget_s == 8 * 3600


def test_dump_round_trips():
    cfg = UPSConfig.model_validate({"latent": {"dim": 48, "tokens": 16}, "ttc": {"decoder": {"num_heads": 6}}})
    assert UPSConfig.model_validate(cfg.model_dump(mode="json")) == cfg
    assert UPSConfig.model_validate(cfg.model_dump()) == cfg


def test_sections_built_in_python_fill_derived_sizes_too():
    from ups.config.schema import LatentConfig

    cfg = UPSConfig(latent=LatentConfig(dim=64, tokens=16))
    assert cfg.operator.pdet.input_dim == cfg.diffusion.latent_dim == 64
