"""The IR-MAD fits run as one task per target and method (in parallel on the workers): their merged
results equal one fit_all over every target, and a part's DataError comes back as a value (the
client raises the first in fit_all's order)."""

import numpy as np

from offnadir.change import fit as F
from offnadir.change import tile as T
from offnadir.change.options import ChangeOptions
from offnadir.change.tasks import _fit_task
from offnadir.errors import DataError


def _ctx(n_images=3, p=2):
    return T.Context(shape=(8, 8), n_images=n_images, n_bands=p, cell=1.0, opts=ChangeOptions(),
                     targets=tuple(range(1, n_images)), band_mean=np.zeros((n_images, p)),
                     band_std=np.ones(p))


def _samples(rng, n, targets, p=2):
    out = {}
    for t in targets:
        x = rng.normal(size=(n, p))
        y = 0.8 * x + 0.3 * rng.normal(size=(n, p))
        out[("patch", t)] = (x, y, rng.integers(0, F.N_STRATA, n))
        out[("ortho", t)] = (x, y)
    return out


def _same(a, b):
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    if hasattr(a, "__dict__"):
        return _same(vars(a), vars(b))
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=np.asarray(a).dtype.kind == "f")


def test_parts_merged_equal_one_fit_over_all_targets():
    ctx = _ctx()
    samples = _samples(np.random.default_rng(0), 3000, ctx.targets)
    whole = F.fit_all(samples, ctx, ["a", "b", "c"], True, True, 0.2)
    parts = [_fit_task({"sample": samples}, ctx, ["a", "b", "c"], wp, wo, 0.2, t)
             for t in ctx.targets for wp, wo in ((True, False), (False, True))]
    merged = F.merge_fits(*parts)
    assert list(merged["iterations"]) == ["patch/1", "ortho/1", "patch/2", "ortho/2"]
    assert _same(merged, whole)


def test_a_part_returns_its_data_error():
    ctx = _ctx(n_images=2)
    samples = _samples(np.random.default_rng(1), 3, ctx.targets)  # far too few cells for IR-MAD
    got = _fit_task({"sample": samples}, ctx, ["a", "b"], True, False, 0.2, 1)
    assert isinstance(got, DataError) and "too few cells" in str(got) and "b" in str(got)
