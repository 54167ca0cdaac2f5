"""Malformed camera-model and GCP files give typed offnadir errors, never other exceptions.

Two parts:

* regression cases found by an outside tester (issue 12, item 8), each as a plain test that names
  the exception it used to raise and checks the message names the file and the field;
* hypothesis property tests over mutated real files of every format ``read_camera`` reads and the
  GCP formats (mutation engine in ``fuzz_mutations.py``; the long profile is
  ``benchmarks/fuzz_readers.py``). Property: the reader returns a usable camera (validated RPC,
  positive integer size) / finite GCPs, or raises an :class:`OffnadirError` — nothing else.
  ``derandomize=True`` makes the examples the same on every run.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
import warnings
from pathlib import Path

import pytest
from conftest import real
from fuzz_mutations import (
    CAMERA_SEEDS, GCP_SEEDS, HypothesisDraw, check_camera, check_gcps, mutate, seed_bytes, seed_name,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offnadir.camera.gcps import read_gcps
from offnadir.camera.readers import read_camera
from offnadir.cli import main
from offnadir.errors import GCPError, InvalidModelError, OffnadirError, UnsupportedFormatError

PLEIADES = real("rpcm/tests/test_rpc_files/rpc_PLEIADES.xml")
JAX = real("rpcm/tests/test_rpc_files/JAX_068_001_RGB.json")
ORTHO_YAML = real("orthority/tests/data/rpc/rpc_param.yaml")
GEOM = real("shareloc/tests/data/rpc/phr_ventoux/left_image.geom")
RPB = real("gdal/autotest/gcore/data/md_dg.RPB")
GCPS = real("orthority/tests/data/rpc/gcps.geojson")


def _write(tmp_path: Path, name: str, data) -> Path:
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


def _jax() -> dict:
    return json.loads(JAX.read_text())


# ------------------------------------------------------------------------- regression cases


def test_unknown_xml_encoding_was_lookup_error(tmp_path):
    text = PLEIADES.read_bytes()
    body = re.sub(rb"^\s*<\?xml[^>]*\?>", b"", text, count=1)
    p = _write(tmp_path, "rpc_PLEIADES.xml", b'<?xml version="1.0" encoding="bogus-8"?>\n' + body)
    with pytest.raises(InvalidModelError, match=r"encoding") as ei:
        read_camera(p)
    assert str(p) in str(ei.value) and "bogus-8" in str(ei.value)


def test_23_byte_vrt_was_unicode_decode_error(tmp_path):
    # GDAL's XML error quotes the byte 0xe2 and rasterio fails to decode that message
    data = b"<VRTDataset>\n<a \xe2>\n</a>"
    assert len(data) == 23
    p = _write(tmp_path, "x.vrt", data)
    with pytest.raises(UnsupportedFormatError, match="not valid UTF-8") as ei:
        read_camera(p)
    assert str(p) in str(ei.value)


@pytest.mark.parametrize("field, value, needle", [
    ("row_offset", 10 ** 400, "row_offset"),          # OverflowError (int -> float)
    ("lat_scale", "", "lat_scale"),                     # IndexError ("".split()[0])
    ("row_num", 5, "row_num"),                          # TypeError (int not iterable)
    ("col_den", None, "col_den"),                       # TypeError
    ("col_scale", [1.0], "col_scale"),                  # TypeError (float of a list)
    ("alt_scale", True, "alt_scale"),                   # was silently read as 1.0
    ("row_num", ["x"] * 20, r"row_num\[1\]"),         # ValueError
    ("row_num", [1.0] * 19, "row_num"),                 # 19 coefficients
    ("lat_offset", 123.0, "lat_offset"),                # not a place on Earth
    ("row_scale", 0, "row_scale"),                      # divides by zero
], ids=["huge-int", "empty", "int-coefs", "null-coefs", "list-scale", "bool-scale", "text-coefs", "19-coefs",
        "lat-off-123", "zero-scale"])
def test_rpcm_json_bad_values(tmp_path, field, value, needle):
    doc = _jax()
    doc["rpc"][field] = value
    p = _write(tmp_path, "JAX.json", json.dumps(doc))
    with pytest.raises(InvalidModelError, match=needle) as ei:
        read_camera(p)
    assert str(p) in str(ei.value)


@pytest.mark.parametrize("height, width", [(1e400, 815), (10 ** 400, 815), (-746, 815), (746.5, 815),
                                           ("746", "a"), (0, 815), ([746], 815)],
                         ids=["1e400", "huge-int", "negative", "fraction", "letters", "zero", "list"])
def test_rpcm_json_bad_sizes(tmp_path, height, width):
    doc = _jax()
    doc["height"], doc["width"] = height, width
    text = json.dumps(doc).replace("Infinity", "1e400")  # as the outside tester wrote it
    p = _write(tmp_path, "JAX.json", text)
    with pytest.raises(InvalidModelError, match=r"height/width") as ei:
        read_camera(p)
    assert str(p) in str(ei.value)


def test_rpcm_json_good_size_still_read(tmp_path):
    doc = _jax()
    doc["height"], doc["width"] = 746.0, 815  # whole numbers written as floats are fine
    cam = read_camera(_write(tmp_path, "JAX.json", json.dumps(doc)))
    assert cam.shape == (746, 815)


def test_100000_deep_json_was_recursion_error(tmp_path):
    p = _write(tmp_path, "deep.json", '{"rpc": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(InvalidModelError, match="levels deep") as ei:
        read_camera(p)
    assert str(p) in str(ei.value)
    g = _write(tmp_path, "deep.geojson", '{"type": "FeatureCollection", "features": '
               + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(GCPError, match="levels deep"):
        read_gcps(g)


def test_orthority_yaml_im_size_letters(tmp_path):
    text = ORTHO_YAML.read_text().replace("im_size: [850, 1450]", "im_size: [a, b]")
    p = _write(tmp_path, "rpc_param.yaml", text)
    with pytest.raises(InvalidModelError, match="im_size") as ei:
        read_camera(p)
    assert str(p) in str(ei.value)


def test_orthority_yaml_alias_bomb_is_refused(tmp_path):
    # 9 levels of 9 aliases = 9**9 (387 million) items if expanded; in a known field
    lines = ["a0: &a0 [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]"]
    for k in range(1, 10):
        lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 9) + "]")
    text = ORTHO_YAML.read_text().replace("im_size: [850, 1450]", "im_size: *a9")
    p = _write(tmp_path, "rpc_param.yaml", "\n".join(lines) + "\n" + text)
    with pytest.raises(InvalidModelError, match="aliases") as ei:
        read_camera(p)
    assert str(p) in str(ei.value) and len(str(ei.value)) < 500


def test_geom_bare_line_off_was_index_error(tmp_path):
    text = re.sub(r"(?m)^line_off:.*$", "line_off:", GEOM.read_text())
    p = _write(tmp_path, "left_image.geom", text)
    with pytest.raises(InvalidModelError, match=r"line_off is empty") as ei:
        read_camera(p)
    assert str(p) in str(ei.value)


def test_rpb_empty_line_offset_was_index_error(tmp_path):
    text = re.sub(r"lineOffset\s*=\s*[^;]*;", "lineOffset = ;", RPB.read_text())
    p = _write(tmp_path, "md_dg.RPB", text)
    with pytest.raises(InvalidModelError, match=r"lineOffset is empty") as ei:
        read_camera(p)
    assert str(p) in str(ei.value)


@pytest.mark.parametrize("bad", ["9" * 400, "1e400", "nan", "", "abc"])
def test_gcp_csv_bad_numbers(tmp_path, bad):
    from fuzz_mutations import gcp_csv_from_geojson

    lines = gcp_csv_from_geojson().decode().splitlines()
    cells = lines[2].split(",")
    cells[1] = bad  # lon of the second GCP
    lines[2] = ",".join(cells)
    p = _write(tmp_path, "gcps.csv", "\n".join(lines) + "\n")
    with pytest.raises(GCPError, match=r"line 3.*lon") as ei:
        read_gcps(p)
    assert str(p) in str(ei.value)


@pytest.mark.parametrize("props", [[1, 2], "text", {"ji": [1e308 * 10, 2]}, {"ji": [True, 2]},
                                   {"ji": [[1], 2]}])
def test_gcp_geojson_bad_properties(tmp_path, props):
    doc = json.loads(GCPS.read_text())
    doc["features"][0]["properties"] = props
    p = _write(tmp_path, "gcps.geojson", json.dumps(doc))
    with pytest.raises(GCPError) as ei:
        read_gcps(p)
    assert str(p) in str(ei.value)


def test_cli_bad_model_exits_2_with_one_line(tmp_path, capsys):
    text = re.sub(r"lineOffset\s*=\s*[^;]*;", "lineOffset = ;", RPB.read_text())
    p = _write(tmp_path, "md_dg.RPB", text)
    assert main(["info", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(p) in err and "lineOffset" in err


# ------------------------------------------------------------------------- property tests

_SETTINGS = dict(derandomize=True, database=None, deadline=None, print_blob=False,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _read_mutated(fmt: str, rel: str, data: bytes):
    noise = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="offnadir-fuzz-") as tmp:
        p = Path(tmp) / seed_name(rel)
        p.write_bytes(data)
        with warnings.catch_warnings(), contextlib.redirect_stderr(noise):
            warnings.simplefilter("ignore")
            try:
                if fmt.startswith("gcp-"):
                    check_gcps(read_gcps(p))
                else:
                    check_camera(read_camera(p))
            except OffnadirError as e:
                assert str(e).strip(), "an offnadir error must carry a message"
    assert "Traceback" not in noise.getvalue(), noise.getvalue()


@pytest.mark.parametrize("fmt", sorted(CAMERA_SEEDS))
@settings(max_examples=22, **_SETTINGS)
@given(data=st.data())
def test_mutated_camera_files_give_camera_or_offnadir_error(fmt, data):
    draw = HypothesisDraw(data)
    rel = draw.choice(CAMERA_SEEDS[fmt])
    mutated, _ = mutate(seed_bytes(rel), draw)
    _read_mutated(fmt, rel, mutated)


@pytest.mark.parametrize("fmt", sorted(GCP_SEEDS))
@settings(max_examples=30, **_SETTINGS)
@given(data=st.data())
def test_mutated_gcp_files_give_gcps_or_gcp_error(fmt, data):
    draw = HypothesisDraw(data)
    rel = draw.choice(GCP_SEEDS[fmt])
    mutated, _ = mutate(seed_bytes(rel), draw)
    _read_mutated(fmt, rel, mutated)


@pytest.mark.parametrize("fmt", sorted(CAMERA_SEEDS))
def test_unmutated_seeds_read(fmt):
    """The property is not vacuous: every seed file is a readable camera before mutation."""
    for rel in CAMERA_SEEDS[fmt]:
        check_camera(read_camera(real(rel)))


def test_dimap_referencing_itself_was_recursion_error(tmp_path):
    """A DIMAP document without a model that points to itself (or to another such document) as
    its RPC file used to recurse without end."""
    doc = '<?xml version="1.0"?>\n<Dimap_Document><Ref href="RPC_X.XML"/></Dimap_Document>\n'
    own = _write(tmp_path, "RPC_X.XML", doc)
    with pytest.raises(OffnadirError) as ei:
        read_camera(own)
    assert str(own.name) in str(ei.value)
    dim = _write(tmp_path, "DIM_X.XML", doc)
    with pytest.raises(InvalidModelError, match="referenced by") as ei:
        read_camera(dim)
    assert "RPC_X.XML" in str(ei.value)


def test_geotiff_with_non_utf8_gdal_metadata_prints_nothing(tmp_path, capsys):
    """GDAL's XML error quotes the bad byte; rasterio could not decode it and printed a traceback."""
    src = real("shareloc/tests/data/rpc/PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.tif").read_bytes()
    bad = src.replace(b'<Item name="METADATATYPE">', b'<It\xe9m name="METADATATYPE">', 1)  # same length
    assert bad != src and len(bad) == len(src)
    cam = read_camera(_write(tmp_path, "img.tif", bad))
    check_camera(cam)  # the RPC tag is intact: the model is still read
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "UnicodeDecodeError" not in captured.err
