"""evaluate_split's ensembles: corrector samples (``ensemble_size``) or any ``samples_fn`` feed the ensemble metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ups.data.store import DatasetStore
from ups.eval.evaluate import evaluate_split, sample_split
from ups.inference import load_surrogate
from ups.metrics import crps
from ups.models.persistence import Persistence


def _values(result) -> dict:
    return {(v.metric, v.horizon): v.value for v in result.values}


def test_samples_fn_feeds_the_ensemble_metrics(eval_store):
    store = DatasetStore.open(eval_store)
    fields = torch.from_numpy(store.fields("test"))
    target = fields[:, 1:5]
    common = {"steps": 4, "horizons": (1, 4), "timing_repeats": 1}

    def copies(inputs, steps, params):  # three identical members: zero spread, so CRPS is the mean absolute error
        return inputs[:, -1:].expand(-1, steps, *inputs.shape[2:]).unsqueeze(0).repeat(3, 1, 1, 1, 1)

    with_ensemble = _values(evaluate_split(Persistence(), store, "test", samples_fn=copies, **common))
    mae = (fields[:, :1] - target).abs().double().mean().item()
    assert with_ensemble[("crps", None)] == pytest.approx(mae, rel=1e-6)
    # the truth's rank among 3 equal members is 0 (below them) or 3: its PIT is uniform on [0, 1/4] or [3/4, 1]
    q = (fields[:, :1] > target).double().mean().item()
    levels = np.arange(1, 20) * 0.05
    cdf = q * np.minimum(4 * levels, 1) + (1 - q) * np.maximum(4 * levels - 3, 0)
    assert with_ensemble[("ece", None)] == pytest.approx(np.mean(np.abs(cdf - levels)), rel=1e-9)
    without = _values(evaluate_split(Persistence(), store, "test", **common))
    assert without[("crps", None)] is None and without[("ece", None)] is None
    assert without[("nrmse", None)] == with_ensemble[("nrmse", None)]
    # a model without a corrector has no ensemble, whatever size is asked for
    assert _values(evaluate_split(Persistence(), store, "test", ensemble_size=4, **common))[("crps", None)] is None


def test_ensemble_size_draws_corrector_samples_with_the_seed(trained_run, eval_store):
    store = DatasetStore.open(eval_store)
    model = load_surrogate(trained_run)
    result = evaluate_split(model, store, "test", steps=4, horizons=(1,), seed=7, timing_repeats=1, ensemble_size=3)
    inputs = torch.from_numpy(store.fields("test"))[:, :1]
    samples = model.sample_ensemble(inputs, 4, torch.from_numpy(store.params("test")), n=3, seed=7)
    target = torch.from_numpy(store.fields("test"))[:, 1:5]
    assert _values(result)[("crps", None)] == pytest.approx(crps(samples, target), rel=1e-6)
    # sample_split batches trajectories and keeps members first, aligned with the target
    batched = sample_split(
        lambda x, k, p: model.sample_ensemble(x, k, p, n=3, seed=7), store, "test", 4, 1, batch_size=64
    )
    torch.testing.assert_close(batched, samples)
    with pytest.raises(ValueError, match="not both"):
        evaluate_split(model, store, "test", steps=4, ensemble_size=3, samples_fn=lambda x, k, p: x)
