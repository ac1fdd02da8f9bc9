"""Readers: real 300-W data and fixtures, self-written fixtures for formats with no real sample here."""

from __future__ import annotations

import numpy as np
import pytest
from formats import (
    wflw_line,
    write_300w_boxes,
    write_aflw,
    write_celeba,
    write_cofw_v5,
    write_cofw_v73,
    write_image,
)

from kdmark.data import DatasetError, detect_format, read_dataset
from kdmark.data.images import load_image
from kdmark.data.pts import write_pts

# --- real data --------------------------------------------------------------------------------------------------


def test_real_300w_counts_and_splits(w300_root):
    ds = read_dataset(w300_root)
    assert (ds.format, ds.scheme.name, len(ds)) == ("300w", "300w", 1220)
    tags = ds.tag_counts()
    assert (tags["afw"], tags["helen"], tags["lfpw"], tags["private"]) == (337, 872, 4, 7)
    assert tags["train"] == 1213 and (tags["indoor"], tags["outdoor"]) == (3, 4)
    assert len(read_dataset(w300_root, split="train")) == 1213
    assert len(read_dataset(w300_root, split="private")) == 7
    with pytest.raises(DatasetError, match="no faces found in split 'common'"):
        read_dataset(w300_root, split="common")
    with pytest.raises(DatasetError, match="unknown 300-W split"):
        read_dataset(w300_root, split="bogus")


def test_real_300w_exact_coordinates(w300_root):
    ds = read_dataset(w300_root)
    by_key = {s.key: s for s in ds}
    s = by_key["lfpw/trainset/image_0001.pts"]
    assert s.image.name == "image_0001.png" and s.subsets == ("train", "lfpw")
    np.testing.assert_allclose(s.points[0], [108.704403, 124.006141])
    np.testing.assert_allclose(s.points[36], [136.422984, 143.368828])
    np.testing.assert_allclose(s.points[45], [245.508087, 147.137050])
    s = by_key["300W/01_Indoor/indoor_001.pts"]
    assert s.subsets == ("private", "indoor")
    np.testing.assert_allclose(s.points[0], [108.959459, 80.995025])
    assert s.visible.all() and s.box is None


def test_real_photo_multi_face_pairing(shared_data):
    ds = read_dataset(shared_data / "photos")
    assert ds.format == "folder" and len(ds) == 3
    assert {s.image.name for s in ds} == {"afw_1130084326.jpg"}
    np.testing.assert_allclose(ds[0].points[0], [1603.437902, 576.182752])


@pytest.mark.parametrize(
    "folder, fmt, scheme, count",
    [
        ("mmpose/300w", "coco", "300w", 2),
        ("mmpose/wflw", "coco", "wflw", 4),
        ("mmpose/cofw", "coco", "cofw", 2),
        ("mmpose/aflw", "coco", "aflw", 2),
        ("mmpose/300vw", "folder", "300w", 4),
        ("wflw-line", "folder", "wflw", 1),
        ("wflw-subsets", "wflw", "wflw", 1966),
        ("cofw68", "cofw68", "300w", 507),
    ],
)
def test_every_fixture_folder(fixtures_root, folder, fmt, scheme, count):
    ds = read_dataset(fixtures_root / folder)
    assert (ds.format, ds.scheme.name, len(ds)) == (fmt, scheme, count)
    assert all(s.points.shape == (ds.scheme.num_points, 2) for s in ds)


def test_real_fixture_values(fixtures_root):
    cofw = read_dataset(fixtures_root / "mmpose" / "cofw")
    np.testing.assert_allclose(cofw[0].points[0], [46.562534549474826, 120.07575548185008])
    assert cofw[0].visible.sum() == 23  # mmpose writes 2 - occluded: 6 of 29 points occluded
    c68 = read_dataset(fixtures_root / "cofw68")
    first = c68[0]
    np.testing.assert_allclose(first.points[0], [57.00626102, 30.04355995])  # 1-based file values minus 1
    assert not first.visible[0] and first.visible[1]  # Occ = 1 means occluded
    np.testing.assert_allclose(first.box, [63, 8, 183, 124])  # [64, 9, 120, 116] as x, y, w, h (1-based)
    assert c68.normaliser == "inter_pupil"
    vw = read_dataset(fixtures_root / "mmpose" / "300vw")
    assert vw[0].image.parent.name == "imgs" and vw[0].image.exists()
    np.testing.assert_allclose(vw[0].points[0], [742.224, 196.764])  # CRLF file, 3 decimals
    line = read_dataset(fixtures_root / "wflw-line")[0]
    assert line.attributes["illumination"] and not line.attributes["blur"]
    np.testing.assert_allclose(line.box, [306, 308, 696, 870])


def test_real_wflw_subset_lists(fixtures_root):
    ds = read_dataset(fixtures_root / "wflw-subsets")
    tags = ds.tag_counts()
    assert [tags[t] for t in ("largepose", "expression", "illumination", "makeup", "occlusion", "blur")] == [
        326, 314, 698, 206, 736, 773]
    assert sum(len(s.subsets) - 1 for s in ds) == 3053  # every subset line is kept as a tag
    assert ds[0].image.as_posix().endswith("39--Ice_Skating/39_Ice_Skating_Ice_Skating_39_546.jpg")


# --- self-written fixtures ----------------------------------------------------------------------------------------


def test_wflw_main_and_subset_lines(tmp_path):
    ann = tmp_path / "WFLW_annotations"
    (ann / "list_98pt_rect_attr_train_test").mkdir(parents=True)
    (ann / "list_98pt_test").mkdir()
    test = [wflw_line(0, "0--Parade/a.jpg"), wflw_line(1, "0--Parade/a.jpg", flags=(1, 0, 0, 0, 0, 1))]
    (ann / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_test.txt").write_text("\n".join(test) + "\n")
    (ann / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_train.txt").write_text(
        wflw_line(2, "1--Handshaking/b c.jpg") + "\n")
    (ann / "list_98pt_test" / "list_98pt_test_blur.txt").write_text(wflw_line(1, "0--Parade/a.jpg", rect=False))
    write_image(tmp_path / "WFLW_images" / "0--Parade" / "a.jpg")
    ds = read_dataset(tmp_path)
    assert ds.format == "wflw" and len(ds) == 3  # two faces share one photo; the subset list is not re-read
    train = read_dataset(tmp_path, split="train")
    assert len(train) == 1 and train[0].image.name == "b c.jpg"  # a path with a space survives
    test_faces = read_dataset(tmp_path, split="test")
    assert test_faces[0].image == tmp_path / "WFLW_images" / "0--Parade" / "a.jpg"
    assert test_faces[1].attributes == {"largepose": True, "expression": False, "illumination": False,
                                        "makeup": False, "occlusion": False, "blur": True}
    assert {"largepose", "blur"} <= set(test_faces[1].subsets)
    np.testing.assert_allclose(test_faces[0].box, [5, 6, 95, 96])
    sub = read_dataset(ann / "list_98pt_test" / "list_98pt_test_blur.txt")
    assert len(sub) == 1 and sub[0].box is None and sub[0].subsets == ("blur",)


def test_wflw_bad_line_names_file_and_line(tmp_path):
    f = tmp_path / "list_98pt_rect_attr_test.txt"
    f.write_text(wflw_line(0, "a.jpg") + "\n" + " ".join(["1.0"] * 150) + " a.jpg\n")
    with pytest.raises(DatasetError, match=r"list_98pt_rect_attr_test.txt:2: expected 207 tokens"):
        read_dataset(f)
    ds = read_dataset(f, skip_bad=True)
    assert len(ds) == 1 and len(ds.problems) == 1


@pytest.mark.parametrize("writer", [write_cofw_v5, write_cofw_v73], ids=["v5-scipy", "v7.3-h5py"])
def test_cofw_mat(tmp_path, writer):
    images, phis, boxes = writer(tmp_path / "COFW_test_color.mat")
    ds = read_dataset(tmp_path / "COFW_test_color.mat")
    assert (ds.format, ds.scheme.name, len(ds)) == ("cofw", "cofw", 3)
    s = ds[1]
    np.testing.assert_allclose(s.points[:, 0], phis[1, :29] - 1)
    np.testing.assert_allclose(s.points[:, 1], phis[1, 29:58] - 1)
    assert (s.visible == (phis[1, 58:] == 0)).all()
    np.testing.assert_allclose(s.box, [4, 5, 34, 37])
    np.testing.assert_array_equal(load_image(s.image), images[1])
    grey = load_image(ds[2].image)
    assert grey.shape == images[2].shape + (3,) and (grey[..., 1] == images[2]).all()
    assert s.subsets == ("test",)
    assert len(read_dataset(tmp_path, format="cofw")) == 3


def test_cofw_train_and_test_in_folder(tmp_path):
    write_cofw_v5(tmp_path / "COFW_train_color.mat", "Tr")
    write_cofw_v5(tmp_path / "COFW_test_color.mat", "T")
    ds = read_dataset(tmp_path)
    assert ds.format == "cofw" and ds.tag_counts() == {"test": 3, "train": 3}
    assert len(read_dataset(tmp_path, split="train")) == 3


def test_aflw_info_mat(tmp_path):
    arrays = write_aflw(tmp_path)
    ds = read_dataset(tmp_path, train_size=4)
    assert ds.format == "aflw" and ds.scheme.name == "aflw" and ds.normaliser == "box"
    assert ds.tag_counts()["train"] == 4 and ds.tag_counts()["test"] == 2
    first = int(arrays["ra"][0, 0]) - 1  # ra is a 1-based permutation
    np.testing.assert_allclose(ds[0].points, arrays["data"][first].reshape(2, 19).T)
    np.testing.assert_allclose(ds[0].box, [10, 12, 70, 72])
    assert ds[0].image.exists()
    test_ids = [int(i) - 1 for i in arrays["ra"][0, 4:]]
    frontal_rule = [i for i in test_ids if arrays["mask_new"][i].all()]
    assert len(read_dataset(tmp_path, train_size=4, split="frontal")) == len(frontal_rule)
    listed = tmp_path / "frontal.txt"
    listed.write_text(f"image_name\n{arrays['nameList'][test_ids[0], 0][0]}\n")
    assert len(read_dataset(tmp_path, train_size=4, split="frontal", frontal_list=listed)) == 1


def test_celeba_files(tmp_path):
    write_celeba(tmp_path)
    ds = read_dataset(tmp_path)
    assert (ds.format, ds.scheme.name, len(ds)) == ("celeba", "celeba", 3)
    np.testing.assert_allclose(ds[0].points, [[69, 109], [106, 113], [77, 142], [73, 152], [108, 154]])
    assert ds[0].image.exists() and ds[0].box is None
    assert [s.subsets for s in ds] == [("train",), ("val",), ("test",)]
    wild = read_dataset(tmp_path, variant="wild", split="train")
    np.testing.assert_allclose(wild[0].box, [95, 71, 321, 384])
    (tmp_path / "Anno" / "list_landmarks_align_celeba.txt").write_text(
        "4\n" + "\n".join((tmp_path / "Anno" / "list_landmarks_celeba.txt").read_text().splitlines()[1:]))
    with pytest.raises(DatasetError, match="count line says 4 rows, the file has 3"):
        read_dataset(tmp_path)


def test_300w_box_mat_and_layout(tmp_path):
    root = tmp_path / "300w"
    pts = np.random.default_rng(0).uniform(10, 50, (68, 2))
    for rel in ("afw/1_1", "helen/testset/2", "lfpw/testset/3", "ibug/image_092 _01", "Test/02_Outdoor/o1"):
        write_pts(root / f"{rel}.pts", pts)
        write_image(root / f"{rel}.jpg")
    write_300w_boxes(root / "Bounding Boxes" / "bounding_boxes_ibug.mat",
                     [("image_092 _01.jpg", [1, 2, 30, 40], [3, 40, 33, 4])])
    ds = read_dataset(root)
    assert ds.format == "300w" and len(ds) == 5
    tags = ds.tag_counts()
    assert (tags["train"], tags["common"], tags["challenging"], tags["full"], tags["private"]) == (1, 2, 1, 3, 1)
    ibug = read_dataset(root, split="challenging")[0]
    assert ibug.image.name == "image_092 _01.jpg"
    np.testing.assert_allclose(ibug.box, [2, 3, 32, 39])  # t > b swapped, then 1-based -> 0-based
    det = read_dataset(root, split="challenging", box_source="detector")[0]
    np.testing.assert_allclose(det.box, [0, 1, 29, 39])
    assert read_dataset(root, split="common")[0].box is None


def test_folder_with_mixed_counts(tmp_path):
    pts68 = np.random.default_rng(0).uniform(10, 50, (68, 2))
    for i in range(3):
        write_pts(tmp_path / f"f{i}.pts", pts68)
        write_image(tmp_path / f"f{i}.png")
    write_pts(tmp_path / "menpo_profile.pts", pts68[:39])
    with pytest.raises(DatasetError, match=r"menpo_profile.pts: wrong point count: 39 points, expected 68"):
        read_dataset(tmp_path)
    ds = read_dataset(tmp_path, skip_bad=True)
    assert len(ds) == 3 and len(ds.problems) == 1
    with pytest.raises(DatasetError, match="expected 98"):
        read_dataset(tmp_path, scheme="wflw")


def test_bad_inputs_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty folder"):
        read_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="no such file"):
        read_dataset(tmp_path / "missing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.md").write_text("hi")
    with pytest.raises(DatasetError, match="no landmark annotations found"):
        read_dataset(tmp_path / "junk")
    (tmp_path / "x.mat").write_bytes(b"not a mat")
    with pytest.raises(DatasetError, match="no known layout"):
        detect_format(tmp_path / "x.mat")
    nan = tmp_path / "nan"
    write_pts(nan / "a.pts", np.ones((68, 2)))
    (nan / "b.pts").write_text("version: 1\nn_points: 68\n{\n" + "1 2\n" * 67 + "nan 2\n}\n")
    with pytest.raises(DatasetError, match="b.pts: non-finite coordinate at point 67"):
        read_dataset(nan)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"images": [}')
    with pytest.raises(DatasetError, match="bad.json: not a COCO keypoint file"):
        read_dataset(bad_json)


def test_exif_orientation_is_applied(tmp_path):
    """Issue 20.6: a phone photo stored rotated (orientation 6) is read upright, and its size says so."""
    from PIL import Image

    from kdmark.data.images import image_size, load_image

    upright = np.zeros((40, 60, 3), np.uint8)
    upright[:10, :, 0] = 255  # a red band along the top edge
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1)))  # 60 x 40, as a phone stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif, quality=95)
    img = load_image(path)
    assert img.shape == (40, 60, 3) and image_size(path) == (60, 40)
    assert img[:8, :, 0].mean() > 200 and img[-8:, :, 0].mean() < 50
