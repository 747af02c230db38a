"""The one typed config tree of UPS: ``UPSConfig`` and its sections.

Every section is a frozen pydantic model with ``extra="forbid"``, so a misspelt key fails at load time with its dotted
path, and ``UPSConfig.model_dump()`` *is* the experiment record (defaults filled). Defaults follow the playbook's rules
of thumb; the comments say which. docs/config.md documents every section and the reference-template mapping.

Derived sizes: ``operator.pdet.input_dim``, ``operator.pdet.hidden_dim``, ``diffusion.latent_dim``,
``diffusion.hidden_dim``, ``latent.decoder.hidden_dim`` and ``ttc.decoder.latent_dim`` default to ``latent.dim`` when
omitted (filled before validation, so the dump is explicit); when given they are checked against it.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator
from pydantic_core import PydanticCustomError

from ups.config.merge import get_path, setdefault_path

# Upper bounds, so that whatever validates can run: far above every preset (L: latent.dim 512, 1024 tokens, depth 40,
# batch_tokens 512000) and low enough that products of sizes (parameters, FLOPs, activation bytes) stay inside int64 and
# a dry run on the meta device can count them. Floats must be finite everywhere (``allow_inf_nan=False`` on Section).
MAX_WIDTH = 2**16  # feature widths: dims, hidden sizes, channels, heads, multipliers
MAX_TOKENS = 2**16  # latent tokens, attention window, token pooling factor
MAX_LAYERS = 1024  # blocks per stage, layers, U-Net levels
MAX_POINTS = 2**24  # query points, supernodes, grid cells per axis and patch size
MAX_BATCH = 2**16  # samples per batch (``batch_size`` or ``batch_tokens // latent.tokens``), candidates, ensembles
MAX_FRAMES = 2**16  # time steps: rollouts, horizons, strides (datasets store a few hundred frames)
MAX_STEPS = 2**31 - 1  # optimizer steps, epochs, TTC steps and evaluations: int32, as torch indexes them
MAX_SEED = 2**32 - 1  # numpy.random.seed accepts 0 … 2**32 - 1, the narrowest of python, numpy and torch
MAX_SECONDS = 1e8  # wall-clock budgets (about three years)
MAX_WEIGHT = 1e6  # loss and reward weights, factors and thresholds

PosInt = Annotated[int, Field(ge=1, le=MAX_STEPS)]
NonNegInt = Annotated[int, Field(ge=0, le=MAX_STEPS)]
Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]
Tokens = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
Layers = Annotated[int, Field(ge=1, le=MAX_LAYERS)]
Points = Annotated[int, Field(ge=1, le=MAX_POINTS)]
Batch = Annotated[int, Field(ge=1, le=MAX_BATCH)]
Frames = Annotated[int, Field(ge=1, le=MAX_FRAMES)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
PosFloat = Annotated[float, Field(gt=0, le=MAX_WEIGHT)]
NonNegFloat = Annotated[float, Field(ge=0, le=MAX_WEIGHT)]
Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS)]
Frequency = Annotated[float, Field(gt=0, le=1e4)]  # Fourier feature frequency, in cycles per unit length
LearningRate = Annotated[float, Field(gt=0, le=1)]
Noise = Annotated[float, Field(ge=0, le=100)]  # a standard deviation in units of the normalised field (std 1)
Fraction = Annotated[float, Field(ge=0, le=1)]
OpenUnit = Annotated[float, Field(gt=0, lt=1)]
Lambda = Annotated[float, Field(ge=0, le=2)]  # playbook: physics-residual guidance λ ≤ 2, re-check calibration
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
SplitName = Annotated[str, Field(pattern=r"^(train|val|test|ood_[a-z0-9_]+)$")]

#: pydantic error type of a cross-field check; ``ctx["path"]`` is the offending field relative to the error's loc.
FIELD_CHECK = "ups_field_check"


def field_error(path: str, reason: str) -> PydanticCustomError:
    """A validation error that names the offending field (dotted, relative to the model that raises it)."""
    return PydanticCustomError(FIELD_CHECK, "{path}: {reason}", {"path": path, "reason": reason})


class Section(BaseModel):
    """Base of every config section: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# --- run, data ------------------------------------------------------------------------------------------------------


class RunConfig(Section):
    seed: Seed = 0  # seeds torch/numpy/python for training and sampling
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: Literal["bf16", "fp16", "fp32"] = "bf16"  # autocast dtype when training.amp on CUDA
    model: Name = "latent_operator"  # the candidate: a name registered in ups.models.MODELS, checked at build
    save_every: PosInt = 1000  # optimizer steps between checkpoints
    # Also save every ceil(frac × the stage's steps) steps, when that is sooner: a kill loses at most this fraction of
    # a stage. Left out of the dump while None, so adding it changed no existing config_hash.
    save_every_frac: Annotated[float, Field(gt=0, le=1)] | None = None
    notes: tuple[str, ...] = ()  # free text kept with the record (e.g. reference-template keys without a UPS key)

    @model_serializer(mode="wrap")
    def _omit_unset_frac(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if self.save_every_frac is None:
            data.pop("save_every_frac", None)
        return data


class DataConfig(Section):
    task: Name = "burgers1d"  # a registered task name, checked when the dataset is built
    split: SplitName = "train"
    root: str = "data"
    size: Literal["small", "full"] = "small"
    seed: Seed = 0  # generation seed of the built-in solvers; splits are frozen by it
    fields: tuple[str, ...] | None = None  # channels to model, in this order; None: all of the task's fields
    patch_size: Points = 1  # grid encoder: cells per patch along each axis


# --- model ----------------------------------------------------------------------------------------------------------


class DecoderConfig(Section):
    """AnyPointDecoder (``kind: anypoint``): Fourier-featured query coordinates cross-attend to the latent tokens;
    GridDecoder (``kind: grid``, needs ``latent.encoder: grid``): the encoder's patch layout inverted, token by token
    (PDE-Transformer's un-patchify head; task grid only, far cheaper). ``num_layers``, ``num_heads``, ``frequencies``
    and ``query_points`` apply to the any-point decoder only."""

    kind: Literal["anypoint", "grid"] = "anypoint"
    hidden_dim: Width = 32  # default: latent.dim
    num_layers: Layers = 2
    num_heads: Width = 4
    frequencies: tuple[Frequency, ...] = Field((1.0, 2.0, 4.0, 8.0), min_length=1, max_length=MAX_LAYERS)
    query_points: Points = 16384  # per frame in training (capped at the grid size); playbook 8k-32k
    local_bias: bool = False  # add −d²/(2σ²) (query to token anchor, σ learned per head) to the attention logits

    @model_validator(mode="after")
    def _heads_divide(self) -> DecoderConfig:
        if self.hidden_dim % self.num_heads:
            raise field_error("num_heads", f"must divide hidden_dim ({self.hidden_dim}), got {self.num_heads}")
        return self


class LatentConfig(Section):
    dim: Width = 32
    tokens: Tokens = 32
    encoder: Literal["grid", "upt"] = "grid"  # GridEncoder (patches) or UPTEncoder (points → supernodes → Perceiver)
    supernodes: Points = 2048  # UPT encoder only; playbook 2k-8k (capped at the number of input points)
    decoder: DecoderConfig = DecoderConfig()


class PDETConfig(Section):
    """PDE-Transformer backbone.

    ``group_size`` is the number of tokens per attention window (the playbook's ``window_size``): the token sequence
    of each stage is padded to a multiple of it, and at coarse U-stages a window is min(group_size, tokens there).
    With ``u_shape``, stage ``i`` runs ``depths[i]`` blocks on tokens pooled by ``u_stages[i]`` (down, then mirrored
    up), so ``len(depths) == len(u_stages)`` and total depth is ``sum(depths)``.
    """

    input_dim: Width = 32  # default: latent.dim (must equal it)
    hidden_dim: Width = 32  # default: latent.dim
    depths: tuple[Layers, ...] = Field((1, 1, 1), min_length=1, max_length=16)
    group_size: Tokens = 8  # playbook window_size 8-16; increase to cut memory
    num_heads: Width = 4  # keep head_dim ~64 at scale
    mlp_ratio: Annotated[int, Field(ge=1, le=64)] = 4
    shifted_windows: bool = True
    u_shape: bool = True
    u_stages: tuple[Tokens, ...] = Field((1, 2, 4), min_length=1, max_length=16)  # token pooling factor per stage
    channel_separated: bool = False  # per-channel token streams; multiplies tokens by C (presets S/B/L turn it on)
    qk_rmsnorm: bool = True
    dropout: Fraction = 0.0  # usually not needed with EMA + clip
    drop_path: Fraction = 0.0  # stochastic depth; playbook 0.1-0.2 for deep stacks

    @model_validator(mode="after")
    def _shape_checks(self) -> PDETConfig:
        if self.hidden_dim % self.num_heads:
            raise field_error("num_heads", f"must divide hidden_dim ({self.hidden_dim}), got {self.num_heads}")
        if self.u_shape:
            if len(self.u_stages) != len(self.depths):
                raise field_error("u_stages", f"needs one factor per stage of depths ({len(self.depths)})")
            if self.u_stages[0] != 1 or any(b % a or b <= a for a, b in pairwise(self.u_stages)):
                raise field_error("u_stages", "must start at 1 and each factor must be a larger multiple of the last")
        return self


class ConditioningConfig(Section):
    adaln: bool = True  # AdaLN-Zero
    # "dt", "params" (all of the task's PDE parameters), a parameter name (e.g. "Re"), "bc_type", "geometry_id".
    inputs: tuple[str, ...] = ("dt", "params", "bc_type")
    time_encoding: Literal["learned_fourier", "sinusoidal"] = "learned_fourier"


class OperatorConfig(Section):
    pdet: PDETConfig = PDETConfig()
    conditioning: ConditioningConfig = ConditioningConfig()


class BaselineConfig(Section):
    """Grid baselines ``run.model: unet | fno`` (ups.models.unet / ups.models.fno); the latent operator ignores it.

    Defaults are CPU-small (0.25M U-Net / 0.09M FNO parameters on burgers1d small); PDEArena / PDEBench sizes are
    width 64-128 and 12-20 modes.
    """

    width: Width = 32  # U-Net: channels at full resolution (doubled per level); FNO: hidden channels
    levels: Annotated[int, Field(ge=1, le=12)] = 2  # U-Net: stride-2 downsamplings (2**12 cells > any grid axis)
    modes: Points = 16  # FNO: Fourier modes kept per axis (capped at the grid size)
    layers: Layers = 4  # FNO: Fourier layers


class DiffusionConfig(Section):
    """Few-step residual corrector (rectified flow, distilled to a consistency student)."""

    enabled: bool = True
    latent_dim: Width = 32  # default: latent.dim (must equal it)
    hidden_dim: Width = 32  # default: latent.dim
    num_layers: Layers = 3
    method: Literal["rectified_flow", "consistency"] = "consistency"  # sampler at inference
    steps: int = Field(2, ge=1, le=4)  # playbook: 1-2 step student
    cadence_steps: Frames = 16  # corrector every k rollout steps; playbook 8-32
    gap_threshold: PosFloat | None = None  # also correct when the physics gap exceeds this
    guidance_lambda: Lambda = 1.0


# --- training -------------------------------------------------------------------------------------------------------


class LossWeights(Section):
    task: NonNegFloat = 1.0  # nRMSE
    edge: NonNegFloat = 1e-3  # TV; playbook: 1e-3-5e-3, only if spectral ringing appears
    conservation: NonNegFloat = 1e-3
    inverse_encode: NonNegFloat = 0.5  # UPT latent stability
    inverse_decode: NonNegFloat = 0.5


class TrainingConfig(Section):
    batch_size: Batch = 16
    batch_tokens: PosInt | None = None  # when set: batch_size = max(1, batch_tokens // latent.tokens)
    time_stride: Frames = 1  # stored frames per model step
    dt: PosFloat | None = None  # Δt fed to the conditioner; None: time_stride × the dataset's dt
    num_workers: Annotated[int, Field(ge=0, le=1024)] = 0
    shuffle: bool = True
    latent_cache_dir: str | None = None
    amp: bool = True  # autocast (run.mixed_precision) on CUDA; no effect on CPU
    compile: bool = False
    activation_checkpointing: bool = False
    ema_decay: float = Field(0.9995, ge=0, lt=1)  # playbook 0.999-0.9999
    grad_clip: PosFloat | None = 1.0  # global norm; a stage's grad_clip overrides it
    horizon_curriculum: tuple[Frames, ...] = Field((4, 8, 16, 32), min_length=1, max_length=MAX_LAYERS)
    grow_every_steps: PosInt = 2000
    freeze_bottom_on_grow: bool = True  # freeze the bottom third when the horizon first grows
    sampling_temperature: Annotated[float, Field(gt=0, le=100)] = 0.7  # regime/BC sampler; playbook 0.6-0.8
    early_stop_at: Fraction | None = 0.35  # stop if val has not beaten baseline by 1σ at this budget fraction
    physics_spike_factor: PosFloat | None = 10.0  # abort (keep last good checkpoint) past this × baseline gap
    time_budget_s: Seconds | None = None  # operator stage: stop at the first step past this wall clock (not bitwise)
    loss: LossWeights = LossWeights()

    @model_validator(mode="after")
    def _curriculum_grows(self) -> TrainingConfig:
        h = self.horizon_curriculum
        if any(b < a for a, b in pairwise(h)):
            raise field_error("horizon_curriculum", f"must be non-decreasing, got {list(h)}")
        return self


class OptimizerConfig(Section):
    name: Literal["adamw", "adam"] = "adamw"
    lr: LearningRate = 3e-4  # playbook: 3e-4 at ~256k batch tokens, scale linearly
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.9, 0.95)
    weight_decay: Fraction = 0.01  # operators 0.01; diffusion stages default to 0.02


class SchedulerConfig(Section):
    name: Literal["cosineannealinglr", "constant"] = "cosineannealinglr"
    t_max: PosInt | None = None  # cosine period in epochs; None: the stage's epochs
    eta_min: Fraction = 0.0  # a learning rate: at most 1, like optimizer.lr
    warmup_ratio: Fraction = 0.05  # linear warm-up over this fraction of the stage's steps; playbook 3-6%


class StageConfig(Section):
    """One training stage; ``epochs: 0`` skips it."""

    default_weight_decay: ClassVar[float] = 0.01

    epochs: NonNegInt = 20
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    grad_clip: PosFloat | None = None  # None: training.grad_clip

    @model_validator(mode="before")
    @classmethod
    def _stage_weight_decay(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("optimizer", {}), dict):
            optimizer = {"weight_decay": cls.default_weight_decay, **data.get("optimizer", {})}
            data = {**data, "optimizer": optimizer}
        return data


class DiffusionStageConfig(StageConfig):
    default_weight_decay: ClassVar[float] = 0.02  # playbook: 0.02-0.05 for diffusion backbones

    epochs: NonNegInt = 8
    grad_clip: PosFloat | None = 0.8  # playbook: 0.5-0.8 for diffusion


class SteadyPriorStageConfig(DiffusionStageConfig):
    """Flow-matching prior for steady tasks (a separate head)."""

    epochs: NonNegInt = 20
    objective: Literal["flow_matching"] = "flow_matching"
    noise_schedule: Literal["cosine", "linear"] = "cosine"
    sampler_steps: int = Field(8, ge=1, le=64)  # playbook: 6-12 after distillation
    guidance_lambda: Lambda = 1.0


class StagesConfig(Section):
    operator: StageConfig = StageConfig()
    diff_residual: DiffusionStageConfig = DiffusionStageConfig()
    consistency_distill: DiffusionStageConfig = DiffusionStageConfig(epochs=4)
    steady_prior: SteadyPriorStageConfig = SteadyPriorStageConfig()


# --- test-time computing --------------------------------------------------------------------------------------------


class TTCSamplerConfig(Section):
    tau_range: tuple[OpenUnit, OpenUnit] = (0.15, 0.85)
    noise_std: Noise = 0.015
    noise_schedule: tuple[Noise, ...] = Field((0.03, 0.015, 0.005), max_length=MAX_LAYERS)

    @model_validator(mode="after")
    def _ordered(self) -> TTCSamplerConfig:
        if self.tau_range[0] >= self.tau_range[1]:
            raise field_error("tau_range", f"must be increasing (low < high), got {list(self.tau_range)}")
        return self


class RewardWeights(Section):
    mass: NonNegFloat = 1.0
    energy: NonNegFloat = 0.1
    penalty_negative: NonNegFloat = 0.5
    tv: NonNegFloat = 0.0


class TTCRewardConfig(Section):
    """Reward on decoded fields; terms whose field the task lacks are skipped."""

    grid: tuple[Points, ...] | None = Field(None, max_length=3)  # decode grid for the reward; None: the task's grid
    mass_field: str | None = None  # None: the task's conserved quantities
    energy_field: str | None = None
    weights: RewardWeights = RewardWeights()


class TTCDecoderConfig(Section):
    """The decoder TTC scores with. It is always the *trained* ``latent.decoder``: these fields must match it."""

    latent_dim: Width = 32  # default: latent.dim (must equal it)
    query_dim: Annotated[int, Field(ge=1, le=3)] | None = None  # spatial dims of queries; None: the task's
    hidden_dim: Width = 32
    num_layers: Layers = 2
    num_heads: Width = 4
    frequencies: tuple[Frequency, ...] = Field((1.0, 2.0, 4.0, 8.0), min_length=1, max_length=MAX_LAYERS)
    output_channels: dict[str, Width] = {}  # fields the reward reads


#: Architecture fields shared by ``ttc.decoder`` and ``latent.decoder`` (each fills the other's omissions).
DECODER_ARCH = ("hidden_dim", "num_layers", "num_heads", "frequencies")


class TTCConfig(Section):
    enabled: bool = False
    steps: PosInt = 1
    candidates: Batch = 8
    beam_width: Batch = 3
    horizon: Frames = 1  # look-ahead steps per candidate
    max_evaluations: PosInt | None = None  # reward evaluations per sample; None: unlimited
    sampler: TTCSamplerConfig = TTCSamplerConfig()
    reward: TTCRewardConfig = TTCRewardConfig()
    decoder: TTCDecoderConfig | None = None

    @model_validator(mode="after")
    def _beam_fits(self) -> TTCConfig:
        if self.beam_width > self.candidates:
            raise field_error("beam_width", f"must be <= candidates ({self.candidates}), got {self.beam_width}")
        return self


# --- physics, eval, logging -----------------------------------------------------------------------------------------


class ProjectionsConfig(Section):
    """Post-decode projections, applied where the task has the structure (velocity, positive or conserved fields)."""

    hodge_div_free: bool = False
    positivity_clamp: bool = False
    flux_continuity: bool = False


class PhysicsConfig(Section):
    projections: ProjectionsConfig = ProjectionsConfig()
    budgets_check: bool = True  # log per-step conservation budgets


class EvalBudget(Section):
    """Budget of one evaluation size (``data.size``)."""

    time_budget_s: Seconds = 3600.0  # playbook Small Eval: 10-60 min
    rollout_steps: Frames | None = None  # overrides eval.rollout_steps at this size


class FullEvalBudget(EvalBudget):
    time_budget_s: Seconds = 8 * 3600.0  # playbook Full Eval: overnight


class EvalConfig(Section):
    rollout_steps: Frames = 16  # predicted frames per rollout (input frames excluded)
    # nRMSE@k / pearson@k steps, each <= rollout_steps
    horizons: tuple[Frames, ...] = Field((1, 4, 16), max_length=MAX_LAYERS)
    splits: tuple[SplitName, ...] = Field(("test",), min_length=1, max_length=MAX_LAYERS)
    ensemble_size: Batch = 8  # corrector samples for ECE / CRPS / spread-skill
    small: EvalBudget = EvalBudget()
    full: FullEvalBudget = FullEvalBudget()

    @model_validator(mode="after")
    def _horizons_fit(self) -> EvalConfig:
        for i, k in enumerate(self.horizons):
            if k > self.rollout_steps:
                raise field_error(f"horizons.{i}", f"{k} exceeds rollout_steps ({self.rollout_steps})")
        return self

    def steps_for(self, size: Literal["small", "full"]) -> int:
        """Rollout length at a data size: that size's override, else ``rollout_steps``."""
        return getattr(self, size).rollout_steps or self.rollout_steps

    def horizons_for(self, size: Literal["small", "full"]) -> tuple[int, ...]:
        """The configured horizons that fit the rollout length at ``size``."""
        return tuple(k for k in self.horizons if k <= self.steps_for(size))


class LoggingConfig(Section):
    wandb: bool = False
    wandb_project: str = "ups"
    wandb_mode: Literal["offline", "online"] = "offline"
    tensorboard: bool = False
    write_html_dashboard: bool = True
    log_every: PosInt = 50  # optimizer steps
    output_dir: str = "artifacts/runs"


# --- the whole tree -------------------------------------------------------------------------------------------------


class UPSConfig(Section):
    """The whole config. Cross-field checks report the dotted path of the field to fix."""

    run: RunConfig = RunConfig()
    data: DataConfig = DataConfig()
    latent: LatentConfig = LatentConfig()
    operator: OperatorConfig = OperatorConfig()
    baseline: BaselineConfig = BaselineConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    training: TrainingConfig = TrainingConfig()
    stages: StagesConfig = StagesConfig()
    ttc: TTCConfig = TTCConfig()
    physics: PhysicsConfig = PhysicsConfig()
    eval: EvalConfig = EvalConfig()
    logging: LoggingConfig = LoggingConfig()

    @model_validator(mode="before")
    @classmethod
    def _fill_derived(cls, data: Any) -> Any:
        latent = data.get("latent", {}) if isinstance(data, dict) else None
        if isinstance(latent, LatentConfig):
            dim = latent.dim
        elif isinstance(latent, dict):
            dim = latent.get("dim") or LatentConfig.model_fields["dim"].default
        else:
            return data
        for path in [
            ("operator", "pdet", "input_dim"),
            ("operator", "pdet", "hidden_dim"),
            ("diffusion", "latent_dim"),
            ("diffusion", "hidden_dim"),
        ]:
            data = setdefault_path(data, path, dim)
        ttc_decoder = get_path(data, ("ttc", "decoder"))[1]
        if isinstance(ttc_decoder, dict):
            data = setdefault_path(data, ("ttc", "decoder", "latent_dim"), dim)
            latent_decoder = get_path(data, ("latent", "decoder"))[1]
            latent_decoder = latent_decoder if isinstance(latent_decoder, dict) else {}
            for key in DECODER_ARCH:  # each side fills the other's omissions; what neither gives gets the default
                if key in ttc_decoder:
                    data = setdefault_path(data, ("latent", "decoder", key), ttc_decoder[key])
                elif key in latent_decoder:
                    data = setdefault_path(data, ("ttc", "decoder", key), latent_decoder[key])
            data = setdefault_path(data, ("ttc", "decoder", "hidden_dim"), dim)
        data = setdefault_path(data, ("latent", "decoder", "hidden_dim"), dim)
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> UPSConfig:
        dim, tokens, pdet = self.latent.dim, self.latent.tokens, self.operator.pdet
        if pdet.input_dim != dim:
            raise field_error("operator.pdet.input_dim", f"must equal latent.dim ({dim}), got {pdet.input_dim}")
        if self.diffusion.latent_dim != dim:
            raise field_error("diffusion.latent_dim", f"must equal latent.dim ({dim}), got {self.diffusion.latent_dim}")
        if (batch_tokens := self.training.batch_tokens) and batch_tokens // tokens > MAX_BATCH:
            reason = f"gives a batch of {batch_tokens // tokens} at latent.tokens {tokens}, more than {MAX_BATCH}"
            raise field_error("training.batch_tokens", reason)
        if pdet.group_size > tokens:
            raise field_error("operator.pdet.group_size", f"must be <= latent.tokens ({tokens}), got {pdet.group_size}")
        if pdet.u_shape and tokens % pdet.u_stages[-1]:
            raise field_error("operator.pdet.u_stages", f"coarsest factor must divide latent.tokens ({tokens})")
        if (decoder := self.ttc.decoder) is not None:
            if decoder.latent_dim != dim:
                raise field_error("ttc.decoder.latent_dim", f"must equal latent.dim ({dim}), got {decoder.latent_dim}")
            for key in DECODER_ARCH:
                mine, trained = getattr(decoder, key), getattr(self.latent.decoder, key)
                if mine != trained:
                    reason = f"must match latent.decoder.{key} ({trained}): TTC scores with the trained decoder"
                    raise field_error(f"ttc.decoder.{key}", reason)
        needs_student = self.diffusion.enabled and self.diffusion.method == "consistency"
        if needs_student and self.stages.consistency_distill.epochs == 0:
            raise field_error("stages.consistency_distill.epochs", "must be > 0 when diffusion.method is consistency")
        return self
