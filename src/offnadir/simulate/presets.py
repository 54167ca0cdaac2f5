"""Options of :func:`offnadir.simulate.simulate`: output file names, radiometric constants, the
presets (``default``, ``hard``) and the checks that turn bad options into clear errors."""

from __future__ import annotations

import math

import numpy as np

from offnadir.errors import ConfigError

OUTPUT_FILES = {
    "dsm": "dsm.tif",
    "dsm_epoch2": "dsm_epoch2.tif",
    "dtm": "dtm.tif",
    "base": "base.tif",
    "target": "target.tif",
    "truth_change": "truth_change.tif",
    "truth_elevated": "truth_elevated.tif",
    "truth_occluded": "truth_occluded.tif",
    "truth_shadow": "truth_shadow.tif",
    "truth_change_class": "truth_change_class.tif",
    "truth_structural": "truth_structural.tif",
    "gcps_base": "gcps_base.csv",
    "gcps_target": "gcps_target.csv",
    "scene_json": "scene.json",
}
DEFAULT_DATES = ("2021-06-01T10:40:00Z", "2023-09-12T10:20:00Z")
ELEVATED_M = 2.5
#: diffuse sky irradiance per band (B, G, R, NIR), relative to the direct sun
SKY = (0.30, 0.25, 0.20, 0.15)
#: epoch-2 nuisances
GAIN2 = (0.93, 1.04, 1.08, 0.95)
OFFSET1 = (60.0, 55.0, 50.0, 45.0)
OFFSET2 = (75.0, 62.0, 48.0, 40.0)
VEG_TINT2 = (1.05, 0.88, 1.30, 0.82)
#: a dry season at epoch 2 (harder scenes): vegetation browner and far less NIR-bright
VEG_TINT2_DRY = (1.15, 0.80, 1.50, 0.55)
#: option sets of :func:`simulate` (``preset=``, ``offnadir simulate --preset``); explicit options win.
#: ``hard``: one band, strong radiometric decorrelation between the dates, no acquisition time or
#: sun in the image files, 20 % of the trees changed (half cut, half grown), acquisition dates and
#: times drawn from the seed (so the sun differs per seed).
PRESETS = {
    "default": dict(bands=4, decorrelation=0.0, metadata=True, tree_changes=0.0, random_dates=False),
    "hard": dict(bands=1, decorrelation=1.0, metadata=False, tree_changes=0.2, random_dates=True),
}


def view_arg(v, name):
    """(off-nadir, azimuth) degrees from ``v``, checked; azimuth wrapped to [0, 360)."""
    try:
        off, az = (float(x) for x in v)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be (off_nadir_deg, azimuth_deg), e.g. (25, 270); got {v!r}.") from None
    if not (0.0 <= off <= 45.0) or not math.isfinite(az):
        raise ConfigError(f"{name}: off-nadir angle {off} must be between 0 and 45 degrees "
                          f"(and the azimuth a number); got {v!r}.")
    return off, az % 360.0


def check_basics(size: int, cell: float, supersample: int, bias_px: float) -> None:
    if size < 32 or size > 4096:
        raise ConfigError(f"size {size} must be between 32 and 4096 cells per side.")
    if not (cell > 0):
        raise ConfigError(f"cell {cell} must be a positive number of metres.")
    if not 1 <= supersample <= 8:
        raise ConfigError(f"supersample {supersample} must be between 1 and 8 rays per pixel side.")
    if not math.isfinite(bias_px) or abs(bias_px) > 100:
        raise ConfigError(f"bias_px {bias_px} must be a number of pixels between -100 and 100.")


def resolve_preset(preset: str, **overrides) -> dict:
    """The preset's options with the explicit ones (not None) applied, checked."""
    if preset not in PRESETS:
        raise ConfigError(f"preset {preset!r} is not known; choose one of {', '.join(PRESETS)}.")
    opt = dict(PRESETS[preset])
    for k, v in overrides.items():
        if v is not None:
            opt[k] = v
    if opt["bands"] not in (1, 4):
        raise ConfigError(f"bands {opt['bands']} must be 1 (panchromatic) or 4 (B, G, R, NIR).")
    if not 0.0 <= float(opt["decorrelation"]) <= 1.0 or not 0.0 <= float(opt["tree_changes"]) <= 1.0:
        raise ConfigError(f"decorrelation {opt['decorrelation']} and tree_changes {opt['tree_changes']} must be "
                          "between 0 and 1.")
    return opt


def resolve_dates(dates, opt: dict, rng_h, center_lonlat):
    """(ISO texts, UTC datetimes) of the two epochs; drawn from the seed's ``rng_h`` when the preset
    asks for random dates and none were given."""
    from offnadir.simulate.sun import parse_utc, random_dates

    if opt["random_dates"] and tuple(dates) == DEFAULT_DATES:
        dates = random_dates(rng_h, center_lonlat)
    try:
        times = [parse_utc(d) for d in dates]
    except (TypeError, ValueError):
        raise ConfigError(f"dates must be two ISO 8601 UTC times such as {DEFAULT_DATES}; got {dates!r}.") from None
    if len(times) != 2:
        raise ConfigError(f"dates must hold two acquisition times (base, target); got {dates!r}.")
    return dates, times


def draw_radiometry(opt: dict, rng_h) -> dict:
    """Per-view radiometry (gain, offset, gamma per band): fixed for the default preset, the
    epoch-2 one drawn from ``rng_h`` when ``decorrelation`` > 0."""
    radiometry = {"base": dict(gain=[1.0] * 4, offset=list(OFFSET1), gamma=[1.0] * 4),
                  "target": dict(gain=list(GAIN2), offset=list(OFFSET2), gamma=[1.0] * 4)}
    if opt["decorrelation"] > 0:
        d = float(opt["decorrelation"])
        radiometry["target"] = dict(gain=list(1.0 + 0.4 * d * rng_h.uniform(-1, 1, 4)),
                                    offset=list(d * rng_h.uniform(-30.0, 150.0, 4)),
                                    gamma=list(1.0 + 0.35 * d * rng_h.uniform(-1, 1, 4)))
    return radiometry


def vegetation_tint2(opt: dict) -> np.ndarray:
    return np.asarray(VEG_TINT2 if opt["decorrelation"] == 0 else VEG_TINT2_DRY, np.float32)


#: files added by a same-date pair at epoch 2 (``new_views=2``)
STEREO_FILES = {"target2": "target2.tif", "gcps_target2": "gcps_target2.csv",
                "truth_occluded_target2": "truth_occluded_target2.tif"}
#: B/H of the epoch-2 pair when its second view is not given: along-track VHR stereo is tasked at
#: B/H 0.2-0.5 (Pleiades, WorldView); 0.3 is in the middle of that range
STEREO_BH = 0.3


def _tan_vector(off_deg: float, az_deg: float) -> np.ndarray:
    """(east, north) ground offset per metre of height of a view: tan(off-nadir) towards the azimuth."""
    t = math.tan(math.radians(off_deg))
    return np.array([t * math.sin(math.radians(az_deg)), t * math.cos(math.radians(az_deg))])


def base_to_height(view_a, view_b) -> float:
    """B/H of two views (off-nadir, azimuth) of one ground point: the length of the difference of
    their ground offsets per metre of height (parallel-ray approximation)."""
    return float(np.hypot(*(_tan_vector(*view_a) - _tan_vector(*view_b))))


def stereo_partner(target_view, bh: float = STEREO_BH) -> tuple[float, float]:
    """The second view of a same-pass along-track pair: the target view moved along the orbit
    (the simulated camera's ground track heading) by ``bh`` — forward or backward, whichever is
    nearer nadir (less of the scene hidden) — so the pair's B/H is ``bh``."""
    import inspect

    from offnadir.simulate.camera_model import PushbroomCamera

    heading = inspect.signature(PushbroomCamera.looking_at).parameters["heading_deg"].default
    along = np.array([math.sin(math.radians(heading)), math.cos(math.radians(heading))])
    t1 = _tan_vector(*target_view)
    t2 = min((t1 + bh * along, t1 - bh * along), key=lambda v: float(np.hypot(*v)))
    off = math.degrees(math.atan(float(np.hypot(*t2))))
    az = math.degrees(math.atan2(t2[0], t2[1])) % 360.0
    return round(off, 3), round(az, 3)


def check_new_views(new_views) -> int:
    try:
        n = int(new_views)
    except (TypeError, ValueError):
        n = 0
    if n not in (1, 2) or n != new_views:
        raise ConfigError(f"new_views {new_views!r} must be 1 (one image of the second date) or 2 (a same-date "
                          "stereo pair at the second date: target.tif and target2.tif).")
    return n
