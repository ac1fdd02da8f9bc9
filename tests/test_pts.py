"""The .pts grammar and its variants (docs/datasets.md §1.2), and one-line errors for malformed files."""

from __future__ import annotations

import numpy as np
import pytest

from kdmark.data.pts import read_pts, write_pts
from kdmark.errors import DatasetError

BODY = "611.284152 272.773913\n607.899810 304.319120\n613.094672 339.255590\n"
EXPECTED = np.array([[610.284152, 271.773913], [606.899810, 303.319120], [612.094672, 338.255590]])


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\nn_points:  3\n{\n" + BODY + "}\n",  # 300-W: two spaces after n_points
        "version: 1.0\nn_points: 3\n{\n" + BODY + "}",  # 300VW style, no newline after }
        ("version: 1\nn_points: 3\n{\n" + BODY + "}\n").replace("\n", "\r\n"),  # CRLF
        BODY,  # bare coordinate lines, no header
        "version: 1\nn_points:  3\n{\n" + BODY.replace("\n", " extra\n") + "}\n  \n",  # trailing tokens, blank tail
    ],
    ids=["300w", "300vw-no-eol", "crlf", "bare", "trailing"],
)
def test_variants_read_to_zero_based(tmp_path, text):
    p = tmp_path / "face.pts"
    p.write_bytes(text.encode())
    np.testing.assert_allclose(read_pts(p), EXPECTED)


def test_name_with_space(tmp_path):
    p = tmp_path / "image_092 _01.pts"
    p.write_text("version: 1\nn_points:  3\n{\n" + BODY + "}\n")
    assert read_pts(p).shape == (3, 2)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("version: 1\nn_points:  4\n{\n" + BODY + "}\n", "declares n_points 4 but holds 3"),
        ("version: 1\nn_points:  3\n{\n" + BODY, "no closing"),
        ("version: 1\nn_points:  3\n" + BODY, "no '{'"),
        ("version: 1\nn_points:  3\n{\n1 2\nx 3\n4 5\n}\n", "line 5: coordinates are not numbers"),
        ("version: 1\nn_points:  3\n{\n1 2\nnan 3\n4 5\n}\n", "non-finite coordinate at point 1"),
        ("version: 1\nn_points:  3\n{\n1 2\n3\n4 5\n}\n", "line 5: expected 'x y'"),
        ("", "no points"),
    ],
)
def test_malformed_is_one_line_naming_the_file(tmp_path, text, problem):
    p = tmp_path / "bad.pts"
    p.write_text(text)
    with pytest.raises(DatasetError) as err:
        read_pts(p)
    assert problem in str(err.value) and str(p) in str(err.value) and "\n" not in str(err.value)


def test_wrong_count_and_binary(tmp_path):
    p = tmp_path / "f.pts"
    p.write_text("version: 1\nn_points:  3\n{\n" + BODY + "}\n")
    with pytest.raises(DatasetError, match="wrong point count: 3 points, expected 68"):
        read_pts(p, expected=68)
    p.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(DatasetError, match="not a text file"):
        read_pts(p)
    with pytest.raises(DatasetError, match="cannot read"):
        read_pts(tmp_path / "missing.pts")


def test_write_read_round_trip(tmp_path):
    pts = np.random.default_rng(0).uniform(0, 500, (68, 2))
    write_pts(tmp_path / "x.pts", pts)
    text = (tmp_path / "x.pts").read_text()
    assert text.startswith("version: 1\nn_points:  68\n{\n")
    np.testing.assert_allclose(read_pts(tmp_path / "x.pts"), pts, atol=1e-6)


def test_real_file_exact_coordinates(w300_root):
    pts = read_pts(w300_root / "afw" / "4351876664_1.pts")
    assert pts.shape == (68, 2)
    np.testing.assert_allclose(pts[0], [97.416486, 160.073392])
    np.testing.assert_allclose(pts[67], [169.300255, 243.714902])
