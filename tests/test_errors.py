"""Bad input gives a typed error whose message names the file and the fix; the CLI turns it into
``offnadir: error: ...`` on stderr, exit code 2 and no traceback."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import real

import offnadir
from offnadir.camera.bias import leave_one_out
from offnadir.camera.gcps import GCPs
from offnadir.cli import main
from offnadir.errors import (
    GCPError, InputFileError, InvalidModelError, NoCameraModelError, OffnadirError, UnsupportedFormatError,
)

QB2 = real("orthority/tests/data/rpc/qb2_basic1b.tif")
QB2_GCPS = real("orthority/tests/data/rpc/gcps.geojson")
NOGEO = real("shareloc/tests/data/rpc/PHR1B_P_201709281038393_SEN_PRG_FC_178609-001_nogeo.tif")
RPC_TXT = real("gdal/autotest/gcore/data/md_ge_rgb_0010000_rpc.txt")
S2P = real("s2p/tests/data/input_pair/img_01.tif")


def _corrupt(tmp_path, name, pattern, repl):
    """A copy of the real GeoEye _rpc.txt with one field rewritten (CRLF kept)."""
    text = RPC_TXT.read_bytes().decode("ascii")
    new, n = re.subn(pattern, repl, text)
    assert n > 0
    p = tmp_path / name
    p.write_bytes(new.encode("ascii"))
    return p


@pytest.fixture
def bad_models(tmp_path):
    unknown = tmp_path / "catalog.xml"
    unknown.write_text('<?xml version="1.0"?>\n<Catalog><Item name="a"/></Catalog>\n')
    return {
        "missing": (tmp_path / "no_such_image.tif", InputFileError, ["no such file"]),
        "no_model": (NOGEO, NoCameraModelError, ["no RPC metadata"]),
        "unsupported": (unknown, UnsupportedFormatError, ["not a camera model format", "Supported:"]),
        "nan_coefficient": (_corrupt(tmp_path, "nan_rpc.txt", r"(LINE_NUM_COEFF_5:\s*)\S+", r"\g<1>NaN"),
                            InvalidModelError, ["line_num", "non-finite", "[5]", "Re-export"]),
        "zero_denominator": (_corrupt(tmp_path, "zero_rpc.txt", r"(SAMP_DEN_COEFF_\d+:\s*)\S+",
                                      r"\g<1>+0.000000000000000E+00"),
                             InvalidModelError, ["samp_den", "all zeros", "divides by zero"]),
    }


CASES = ["missing", "no_model", "unsupported", "nan_coefficient", "zero_denominator"]


@pytest.mark.parametrize("case", CASES)
def test_bad_camera_input_raises_typed_error(bad_models, case):
    path, exc, words = bad_models[case]
    with pytest.raises(exc) as ei:
        offnadir.read_camera(path)
    msg = str(ei.value)
    assert path.name in msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("case", CASES)
def test_bad_camera_input_cli_exit_2_without_traceback(bad_models, case, capsys):
    path, exc, words = bad_models[case]
    assert main(["info", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("offnadir: error: ") and err.count("\n") == 1
    assert path.name in err and "Traceback" not in err
    for w in words:
        assert w in err
    if case == "no_model":
        assert "--model MODEL_FILE" in err  # the CLI says how to fix it on the command line


# --------------------------------------------------------------------------- GCPs
def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


GCP_HEADER = "id,lon,lat,h,row,col\n"


def gcp_cases(tmp_path):
    feature = {"type": "Feature", "properties": {"id": "bridge", "ji": [10.0, 20.0]},
               "geometry": {"type": "Point", "coordinates": [24.39, -33.69]}}
    return {
        "missing": (tmp_path / "none.csv", ["no such GCP file"]),
        "header_only": (_write(tmp_path, "empty.csv", GCP_HEADER), ["holds no GCPs", "at least 1"]),
        "empty_file": (_write(tmp_path, "blank.csv", "\n"), ["holds no GCPs", "header line"]),
        "no_features": (_write(tmp_path, "none.geojson", '{"type": "FeatureCollection", "features": []}'),
                        ["holds no GCPs"]),
        "missing_column": (_write(tmp_path, "cols.csv", "id,lon,lat,row,col\na,24.4,-33.7,1,2\n"),
                           ["lacks column(s) h", "id,lon,lat,h,row,col"]),
        "short_row": (_write(tmp_path, "short.csv", GCP_HEADER + "a,24.4,-33.7,200,1,2\nb,24.4,-33.7,200,1\n"),
                      ["line 3", "expected 6 fields", "found 5"]),
        "not_a_number": (_write(tmp_path, "nan.csv", GCP_HEADER + "a,24.4,-33.7,2OO,1,2\n"),
                         ["line 2", "column 'h'", "'2OO'", "not a number"]),
        "duplicate_id": (_write(tmp_path, "dup.csv", GCP_HEADER + "a,24.4,-33.7,200,1,2\na,24.41,-33.7,200,3,4\n"),
                         ["['a']", "more than once", "unique id"]),
        "no_height": (_write(tmp_path, "h.geojson", json.dumps({"type": "FeatureCollection",
                                                                 "features": [feature]})),
                      ["feature 0 (id 'bridge')", "[lon, lat, h]", "ellipsoid"]),
        "bad_json": (_write(tmp_path, "bad.geojson", '{"type": "FeatureCollection", "features": [,]}'),
                     ["not valid JSON", "line 1"]),
        "raster_without_gcps": (S2P, ["without GCP tags", "CSV"]),
    }


GCP_CASES = ["missing", "header_only", "empty_file", "no_features", "missing_column", "short_row",
             "not_a_number", "duplicate_id", "no_height", "bad_json", "raster_without_gcps"]


@pytest.mark.parametrize("case", GCP_CASES)
def test_bad_gcp_file_raises_gcp_error(tmp_path, case):
    path, words = gcp_cases(tmp_path)[case]
    with pytest.raises(GCPError) as ei:
        offnadir.read_gcps(path)
    msg = str(ei.value)
    assert path.name in msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("case", ["missing", "header_only", "short_row", "no_height"])
def test_bad_gcp_file_cli(tmp_path, case, capsys):
    path, words = gcp_cases(tmp_path)[case]
    assert main(["info", str(QB2), "--gcps", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("offnadir: error: ") and "Traceback" not in err
    assert path.name in err and all(w in err for w in words)


def test_gcps_outside_the_image_strict(capsys):
    """Two real QB2 GCPs lie outside the crop: strict checking names them and the distances."""
    cam = offnadir.read_camera(QB2)
    with pytest.raises(GCPError) as ei:
        offnadir.fit_bias(cam, QB2_GCPS, strict=True)
    msg = str(ei.value)
    for w in ("gcps.geojson", "2 of 5 GCPs lie outside the 1450x850 image",
              "'house-swcnr-90b' (35.9 px above and 282.4 px right of the image)",
              "'grasnek-roadjunction1-50' (184.7 px left of the image)", "strict=False"):
        assert w in msg, msg
    assert main(["info", str(QB2), "--gcps", str(QB2_GCPS), "--strict-gcps"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("offnadir: error: ") and "house-swcnr-90b" in err and "--strict-gcps" in err


def test_gcp_outside_what_the_model_covers_is_always_an_error(tmp_path, capsys):
    cam = offnadir.read_camera(QB2)
    p = _write(tmp_path, "far.csv", GCP_HEADER + "ok,24.4,-33.68,500,700,400\n"
                                                 "typo,24.4,-33.69,500,70000,400\n")
    with pytest.raises(GCPError, match=r"GCP 'typo' at row 70000.00, col 400.00 lies \d+\.\d px outside the "
                                       r"image area the camera model covers"):
        offnadir.fit_bias(cam, p)
    q = _write(tmp_path, "elsewhere.csv", GCP_HEADER + "paris,2.29,48.88,80,700,400\n")
    with pytest.raises(GCPError, match=r"GCP 'paris' has longitude 2.29, far outside the camera model's validity"):
        offnadir.fit_bias(cam, q)
    assert main(["info", str(QB2), "--gcps", str(p)]) == 2
    assert "offnadir: error: " in capsys.readouterr().err


def test_too_few_gcps_for_the_model(tmp_path, capsys):
    cam = offnadir.read_camera(QB2)
    p = _write(tmp_path, "two.csv", GCP_HEADER + "a,24.40,-33.66,300,200,300\nb,24.38,-33.70,300,900,100\n")
    with pytest.raises(GCPError, match="needs at least 3 GCPs; got 2"):
        offnadir.fit_bias(cam, p, model="affine")
    none = GCPs((), [], [], [], [], [], source="my_gcps")
    with pytest.raises(GCPError, match="my_gcps: holds no GCPs; bias compensation needs at least 1"):
        offnadir.fit_bias(cam, none)
    one = offnadir.read_gcps(p)[0]
    with pytest.raises(GCPError, match="leave-one-out needs at least 2 GCPs; got 1"):
        leave_one_out(cam, one)
    assert main(["info", str(QB2), "--gcps", str(p), "--bias-model", "affine"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("offnadir: error: ") and "at least 3 GCPs" in err and "Traceback" not in err


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["info"]) == 2
    assert "the following arguments are required: IMAGE_OR_RPC" in capsys.readouterr().err
    assert main(["info", str(QB2), "--bias-model", "projective"]) == 2
    assert "invalid choice: 'projective'" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"offnadir {offnadir.__version__}"


def test_all_errors_are_offnadir_errors():
    for exc in (InputFileError, NoCameraModelError, UnsupportedFormatError, InvalidModelError, GCPError):
        assert issubclass(exc, OffnadirError) and exc.exit_code == 2


def test_console_script_entry_point(tmp_path):
    """The installed `offnadir` script: a bad input exits 2 with the message and no traceback."""
    exe = shutil.which("offnadir") or str(Path(sys.executable).with_name("offnadir"))
    missing = tmp_path / "missing_image.tif"
    proc = subprocess.run([exe, "info", str(missing)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("offnadir: error: ") and str(missing) in proc.stderr
    assert "Traceback" not in proc.stderr
