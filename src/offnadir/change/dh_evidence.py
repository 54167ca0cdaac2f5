"""The same-date height change ``dh`` as change evidence: the probability that the height moved
by more than a bound given the sweep's measurement and its sigma, and its combination with the
structural probability (log-odds add)."""
from __future__ import annotations

import numpy as np

#: floor of the height-change sigma (m): a sweep never measures heights better than this
DH_SIGMA_FLOOR = 0.1


def dh_probability(dh, dh_sigma, bound: float):
    """Probability that the height changed by more than ``bound`` metres given a measurement
    ``dh`` with Gaussian sigma ``dh_sigma``: ``Phi((|dh| - bound) / sigma)`` (NaN where not
    measured)."""
    from scipy.special import ndtr

    s = np.where(np.isfinite(dh_sigma) & (dh_sigma > DH_SIGMA_FLOOR), dh_sigma, DH_SIGMA_FLOOR)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(dh), ndtr((np.abs(dh) - bound) / s), np.nan)


def combine(p_struct, p_dh):
    """Independent evidences: log-odds add (naive Bayes with the even prior of the dh test);
    where ``p_dh`` is NaN, ``p_struct`` alone."""
    eps = 1e-6
    a = np.clip(p_struct, eps, 1 - eps)
    b = np.clip(p_dh, eps, 1 - eps)
    with np.errstate(invalid="ignore"):
        lo = np.log(a / (1 - a)) + np.log(b / (1 - b))
        both = 1.0 / (1.0 + np.exp(-lo))
    return np.where(np.isfinite(p_dh) & np.isfinite(p_struct), both, p_struct)
