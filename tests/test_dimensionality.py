"""Intrinsic dimensionality (planted rank recovered) and brain regions (electrodes.tsv column, NIfTI atlas)."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_brainbert.analyses.dimensionality import intrinsic_dimension
from bids_brainbert.analyses.regions import assign_regions, atlas_labels, millimetres
from bids_brainbert.errors import UsageError
from bids_brainbert.workflows.analyses import load_atlas


@pytest.mark.parametrize("rank", [1, 3, 7, 12])
def test_planted_low_rank_embeddings_give_their_rank(rank):
    rng = np.random.default_rng(rank)
    latent = rng.standard_normal((500, rank))
    basis = np.linalg.qr(rng.standard_normal((384, rank)))[0].T          # orthonormal rows: equal variances
    x = latent @ basis * 3.0 + 0.01 * rng.standard_normal((500, 384)) + rng.standard_normal(384)
    result = intrinsic_dimension(x, 0.95)
    assert result.dimension == rank
    assert result.explained[rank - 1] > 0.95 and (rank == 1 or result.explained[rank - 2] < 0.95)
    # a lower threshold needs fewer components when the variances are equal
    if rank > 3:
        assert intrinsic_dimension(x, 0.5).dimension < rank


def test_equal_variance_rank_beyond_twenty_needs_only_95_percent_of_its_components():
    rng = np.random.default_rng(25)
    x = rng.standard_normal((500, 25)) @ np.linalg.qr(rng.standard_normal((384, 25)))[0].T
    assert intrinsic_dimension(x, 0.95).dimension == 24      # 24/25 = 0.96 > 0.95 of the variance


def test_dimension_is_bounded_by_the_examples_and_constant_data_is_zero():
    rng = np.random.default_rng(0)
    assert intrinsic_dimension(rng.standard_normal((10, 40))).dimension <= 9
    assert intrinsic_dimension(np.ones((20, 5))).dimension == 0
    with pytest.raises(ValueError):
        intrinsic_dimension(np.ones((2, 5)))


@pytest.fixture()
def atlas_files(tmp_path):
    """A 20^3 label image with 2 mm voxels, origin at (-20, -30, -10) mm, three labelled voxels."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-20.0, -30.0, -10.0)
    data = np.zeros((20, 20, 20), dtype=np.int16)
    data[5, 6, 7] = 3
    data[10, 10, 10] = 7
    data[2, 15, 4] = 9                          # not in the label table -> unknown
    image = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(image))
    labels = tmp_path / "atlas.tsv"
    labels.write_text("index\tname\n0\tbackground\n3\tHeschl gyrus\n7\thippocampus\n")
    return image, labels, affine


def world_mm(affine, voxel):
    return (affine @ np.append(np.asarray(voxel, float), 1.0))[:3]


def test_atlas_lookup_returns_the_label_of_known_voxels(atlas_files):
    image, labels, affine = atlas_files
    atlas = load_atlas(image, labels)
    points_mm = [world_mm(affine, v) for v in ((5, 6, 7), (10, 10, 10), (2, 15, 4), (0, 0, 0))]
    points_mm.append(world_mm(affine, (10, 10, 10)) + 0.9)       # within half a voxel: same voxel
    points_mm.append(np.array([500.0, 0.0, 0.0]))               # outside the image
    assert atlas_labels(np.array(points_mm), atlas) == ["Heschl gyrus", "hippocampus", "unknown", "unknown",
                                                        "hippocampus", "unknown"]
    # electrodes in metres (coordsystem.json iEEGCoordinateUnits "m") without a region column
    table = pd.DataFrame({"name": ["A1", "A2", "A3"],
                          "x": [p[0] / 1000 for p in points_mm[:3]], "y": [p[1] / 1000 for p in points_mm[:3]],
                          "z": [p[2] / 1000 for p in points_mm[:3]]})
    regions, sources = assign_regions(table, atlas, "m")
    assert regions == ["Heschl gyrus", "hippocampus", "unknown"] and sources == ["atlas.nii.gz"] * 3
    # centimetres too; a region column wins where it has a value
    table_cm = table.assign(x=table["x"] * 100, y=table["y"] * 100, z=table["z"] * 100,
                            region=["superior temporal gyrus", "n/a", ""])
    regions, sources = assign_regions(table_cm, atlas, "cm")
    assert regions == ["superior temporal gyrus", "hippocampus", "unknown"]
    assert sources == ["electrodes.tsv", "atlas.nii.gz", "atlas.nii.gz"]
    assert assign_regions(table, None, "m")[0] == ["unknown"] * 3
    with pytest.raises(ValueError, match="pixels"):
        millimetres(np.zeros((1, 3)), "pixels")


def test_malformed_atlas_inputs_fail_with_the_file_named(atlas_files, tmp_path):
    image, labels, _ = atlas_files
    not_image = tmp_path / "broken.nii.gz"
    not_image.write_bytes(b"this is not a NIfTI file")
    with pytest.raises(UsageError, match="broken.nii.gz: not a readable NIfTI"):
        load_atlas(not_image, labels)
    bad_table = tmp_path / "bad.tsv"
    bad_table.write_text("value\tregion\n1\tx\n")
    with pytest.raises(UsageError, match="bad.tsv: atlas label table needs 'index' and 'name'"):
        load_atlas(image, bad_table)
    four_d = tmp_path / "fourd.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.int16), np.eye(4)), str(four_d))
    with pytest.raises(UsageError, match="fourd.nii.gz: atlas must be a 3-d label image"):
        load_atlas(four_d, labels)
    with pytest.raises(UsageError, match="must be given together"):
        load_atlas(image, None)
    with pytest.raises(UsageError, match="not found"):
        load_atlas(tmp_path / "missing.nii.gz", labels)
