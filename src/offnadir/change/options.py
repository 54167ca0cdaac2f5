"""Options of change detection: the ``change`` section of the run config (one schema, also the
keyword arguments of :func:`offnadir.change.detect`). Light module: no heavy imports."""

from __future__ import annotations

from dataclasses import dataclass, fields

from offnadir.config_schema import Field

METHODS = ("patch", "ortho")

#: the ``change`` config section (validated by offnadir.config; template generated from it)
CHANGE_FIELDS: dict[str, Field] = {
    "enabled": Field(bool, None, "run change detection after the cube (default: when there are >= 2 images)"),
    "method": Field(str, "patch", "patch: patch-wise (occlusion-aware, the method); ortho: per-cell baseline "
                                  "on both images orthorectified without occlusion handling", choices=METHODS),
    "baseline": Field(bool, True, "with method patch, also write the ortho baseline (change_ortho) so "
                                  "evaluate can show the gain"),
    "criteria": Field(list, ["spectral", "structural", "outline"], "change criteria to combine (see offnadir.change.criteria; "
                                                        "a patch changes when any criterion's score reaches 0.5)",
                                                            items=str),
    "combination": Field(str, "max", "how criterion scores combine: max (a patch changes when any criterion "
                                     "passes its threshold) or noisy_or (1 - prod(1 - score): weak evidence of "
                                     "several criteria adds up)", choices=("max", "noisy_or")),
    "segment_step": Field(int, 16, "ground superpixel grid step in cells (SLIC seeds on the global grid)",
        lo=1, hi=4096),
    "segment_iterations": Field(int, 4, "SLIC iterations (halo grows by 2 steps per iteration)", lo=0, hi=1000),
    "segment_compactness": Field(float, 0.5, "SLIC spectral scale, in global standard deviations of the base "
                                             "bands (smaller: superpixels follow edges more)", lo=0, lo_open=True),
    "elevated_height": Field(float, 2.5, "metres above the local ground (opening of the DSM) for a cell to be "
                                         "elevated; elevated and ground cells never share a patch", lo=0, lo_open=True),
    "ground_window": Field(float, 40.0, "metres: side of the square opening that estimates the local ground "
                                        "(wider than the largest building)", lo=0, lo_open=True),
    "roof_step": Field(float, 1.0, "metres: largest height step between neighbouring cells of one elevated "
                                   "patch (roof planes split at walls)", lo=0, lo_open=True),
    "irmad_iterations": Field(int, 10, "maximum IR-MAD iterations (in memory, on a fixed sample of cells "
                                       "gathered in one pass; 10 change the simulator scenes' F1 by < 0.01 "
                                       "against 30)",
        lo=1, hi=10000),
    "irmad_tolerance": Field(float, 1e-4, "IR-MAD stops when no canonical correlation moves more than this",
        lo=0, lo_open=True),
    "spectral_sigma": Field(float, 3.5, "spectral threshold: RMS shift of the patch mean over the MAD variates, "
                                        "in robust per-cell noise standard deviations", lo=0, lo_open=True),
    "spectral_cell_sigma": Field(float, 2.5, "spectral: the patch median of the per-cell MAD magnitude must also "
                                             "exceed this many robust noise sigmas (most cells must agree)",
                                                 lo=0, lo_open=True),
    "baseline_test": Field(str, "chi2", "ortho baseline per-cell test: chi2 = IR-MAD chi-square test at "
                                        "baseline_alpha (the textbook use); robust = baseline_sigma robust noise "
                                        "sigmas, like the spectral criterion but per cell", choices=("chi2", "robust")),
    "baseline_alpha": Field(float, 0.01, "ortho baseline (chi2): significance of the per-cell chi-square test",
        lo=0, hi=1, lo_open=True, hi_open=True),
    "baseline_sigma": Field(float, 4.0, "ortho baseline (robust): threshold in robust noise sigmas",
        lo=0, lo_open=True),
    "max_height_change": Field(float, None, "metres of height change the parallax searches cover (default: the "
                                            "tallest object above the local ground, from the DSM)", lo=0, hi=10000),
    "structural_min_corr": Field(float, 0.5, "structural: the best parallax-shifted correlation must reach this "
                                             "(flat or untextured patches give no structural evidence)", lo=-1, hi=1),
    "structural_peak_width": Field(float, 3.0, "structural: metres either side of the best parallax offset where "
                                                "the correlation must have dropped (a peak, not a plateau)", lo=0),
    "structural_min_shift": Field(float, 0.75, "structural: metres the best-matching parallax offset must reach "
                                               "(smaller apparent shifts are DSM/co-registration error)", lo=0),
    "structural_dz": Field(float, 0.5, "structural threshold: Fisher-z gain of the best shifted correlation "
                                       "over the unshifted one", lo=0),
    "min_cells": Field(int, 10, "patches with fewer usable cells give no evidence (change 0, score 0)", lo=1),
    "shadows": Field(bool, True, "cells lit by the sun at one date only (a cast shadow that moved, a face turned "
                                 "away from the sun; from the DSM and the sun position at each acquisition time) "
                                 "are not compared"),
    "incidence_tolerance": Field(float, 0.25, "spectral: patches whose direct sun relative to flat ground changed by "
                                              "more than this fraction on average (sloped faces under a moved sun) "
                                              "give no spectral evidence", lo=0),
    "shadow_margin": Field(bool, False, "widen each image's predicted cast shadows by the sun's uncertainty "
                                        "(offnadir.change.shadow); off by default: on the simulator scenes it "
                                        "moved ground false alarms both ways and lowered the real one-image scores "
                                        "(docs/change_detection.md)"),
    "missing_shadows": Field(bool, True, "roofs whose predicted cast shadow is seen lit at the target (and seen "
                                         "at the base date) are decided changed (offnadir.change.missing_shadow), "
                                         "and crowns whose shadow summed per crown is (offnadir.change.crown_shadow); "
                                         "needs the sun and each image's shadow/lit classifier"),
    "new_building_shadows": Field(bool, True, "ground cells with the target's unexplained seen shadows down-sun "
                                              "(the shadow length of the scene's typical building) gain, the others "
                                              "lose, by a likelihood ratio calibrated on the run's own ground "
                                              "decision (offnadir.change.shadow_ray); needs the sun and a target "
                                              "shadow classifier that is a witness of shadows"),
    "sun_tolerance": Field(float, 0.3, "metres a cell must rise above a sun ray to cast a shadow", lo=0),
    "vegetation": Field(bool, True, "a patch that is vegetation (NDVI) at both dates is not changed "
                                    "(phenology, crown shading); needs red and NIR bands"),
    "red_band": Field(int, None, "1-based red band (default: from band descriptions, or 3 of 4 bands)", lo=1),
    "nir_band": Field(int, None, "1-based NIR band (default: from band descriptions, or 4 of 4 bands)", lo=1),
    "ndvi_threshold": Field(float, None, "NDVI above which a patch is vegetation (default: automatic, Otsu's "
                                         "threshold of each image's NDVI histogram, at least 0.2)", lo=-1, hi=1),
    "table_csv": Field("path", None, "also export the per-patch table as CSV to this path", output_file=True),
}


@dataclass(frozen=True)
class ChangeOptions:
    enabled: bool | None = None
    method: str = "patch"
    baseline: bool = True
    criteria: tuple = ("spectral", "structural", "outline")
    combination: str = "max"
    segment_step: int = 16
    segment_iterations: int = 4
    segment_compactness: float = 0.5
    elevated_height: float = 2.5
    ground_window: float = 40.0
    roof_step: float = 1.0
    irmad_iterations: int = 10
    irmad_tolerance: float = 1e-4
    spectral_sigma: float = 3.5
    spectral_cell_sigma: float = 2.5
    baseline_test: str = "chi2"
    baseline_alpha: float = 0.01
    baseline_sigma: float = 4.0
    max_height_change: float | None = None
    structural_min_corr: float = 0.5
    structural_peak_width: float = 3.0
    structural_min_shift: float = 0.75
    structural_dz: float = 0.5
    min_cells: int = 10
    shadows: bool = True
    incidence_tolerance: float = 0.25
    shadow_margin: bool = False
    missing_shadows: bool = True
    new_building_shadows: bool = True
    sun_tolerance: float = 0.3
    vegetation: bool = True
    red_band: int | None = None
    nir_band: int | None = None
    ndvi_threshold: float | None = None
    table_csv: str | None = None

    @classmethod
    def from_config(cls, section: dict | None = None, **overrides) -> ChangeOptions:
        from offnadir.errors import ConfigError

        d = {k: v for k, v in (section or {}).items() if v is not None}
        d.update({k: v for k, v in overrides.items() if v is not None})
        if "criteria" in d:
            d["criteria"] = tuple(d["criteria"])
        known = {f.name for f in fields(cls)}
        bad = [k for k in d if k not in known]
        if bad:
            raise ConfigError(f"unknown change option(s) {', '.join(bad)}; known: {', '.join(sorted(known))}.")
        opts = cls(**d)
        opts.check()
        return opts

    def check(self) -> None:
        from offnadir.errors import ConfigError

        if self.method not in METHODS:
            raise ConfigError(f"change.method must be one of {', '.join(METHODS)}, got {self.method!r}.")
        for name in ("segment_step", "irmad_iterations", "min_cells"):
            if getattr(self, name) < 1:
                raise ConfigError(f"change.{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("elevated_height", "ground_window", "roof_step", "spectral_sigma", "spectral_cell_sigma",
                     "baseline_sigma",
                     "segment_compactness", "irmad_tolerance"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"change.{name} must be positive, got {getattr(self, name)}.")
        from offnadir.change.criteria import CRITERIA

        unknown = [c for c in self.criteria if not isinstance(c, str) or c not in CRITERIA]
        if unknown or not self.criteria:
            raise ConfigError(f"change.criteria {list(self.criteria)}: unknown or empty; choose from "
                              f"{', '.join(CRITERIA)}.")
        if self.baseline_test not in ("chi2", "robust"):
            raise ConfigError(f"change.baseline_test must be chi2 or robust, got {self.baseline_test!r}.")
        if not 0 < self.baseline_alpha < 1:
            raise ConfigError(f"change.baseline_alpha must be between 0 and 1, got {self.baseline_alpha}.")
        if self.segment_iterations < 0 or (self.max_height_change or 0) < 0:
            raise ConfigError("change.segment_iterations and change.max_height_change must not be negative.")

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}
