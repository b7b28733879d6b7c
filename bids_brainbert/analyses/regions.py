"""Brain region of each electrode: a region column of the electrodes table, else an atlas lookup, else unknown.

The atlas is a label image (integer voxel values) with its affine (voxel -> world millimetres, as in NIfTI) in the
same space as the electrode coordinates, and a table mapping label values to names. Coordinates in metres or
centimetres (coordsystem.json ``iEEGCoordinateUnits``) are converted to millimetres first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UsageError

UNKNOWN = "unknown"
REGION_COLUMNS = ("region", "label", "anatomical_label", "anatomy")
UNIT_TO_MM = {"m": 1000.0, "cm": 10.0, "mm": 1.0}


@dataclass(frozen=True)
class Atlas:
    data: np.ndarray             # (X, Y, Z) integer labels
    affine: np.ndarray           # (4, 4) voxel -> world (mm)
    names: dict[int, str]        # label value -> region name
    source: str = "atlas"        # file name, for provenance


def region_column(table: pd.DataFrame) -> str | None:
    """The first region-like column of an electrodes/channels table, or None."""
    lowered = {c.lower(): c for c in table.columns}
    for name in REGION_COLUMNS:
        if name in lowered:
            return lowered[name]
    return None


def millimetres(coordinates: np.ndarray, units: str | None) -> np.ndarray:
    """Coordinates (n, 3) in ``units`` ("m", "cm", "mm") as millimetres; ValueError for other units."""
    key = (units or "").strip().lower()
    if key not in UNIT_TO_MM:
        raise ValueError(f"coordinate units {units!r} cannot be converted to millimetres (expected m, cm or mm)")
    return np.asarray(coordinates, dtype=np.float64) * UNIT_TO_MM[key]


def atlas_labels(coordinates_mm: np.ndarray, atlas: Atlas) -> list[str]:
    """Region name at each world coordinate (n, 3) in mm: nearest voxel; outside the image, label 0, a label
    missing from the table or a non-finite coordinate give ``unknown``."""
    coords = np.asarray(coordinates_mm, dtype=np.float64).reshape(-1, 3)
    out = []
    inverse = np.linalg.inv(atlas.affine)
    for point in coords:
        if not np.all(np.isfinite(point)):
            out.append(UNKNOWN)
            continue
        voxel = np.rint(inverse @ np.append(point, 1.0))[:3].astype(int)
        if np.any(voxel < 0) or np.any(voxel >= np.asarray(atlas.data.shape[:3])):
            out.append(UNKNOWN)
            continue
        value = int(atlas.data[tuple(voxel)])
        out.append(atlas.names.get(value, UNKNOWN) if value != 0 else UNKNOWN)
    return out


def assign_regions(table: pd.DataFrame, atlas: Atlas | None = None, units: str | None = None
                   ) -> tuple[list[str], list[str]]:
    """Region and its source ("electrodes.tsv", the atlas name or "none") for each row of ``table``.

    A non-empty value in a region-like column wins; rows without one are looked up in ``atlas`` from their
    ``x, y, z`` (in ``units``) when given; the rest are ``unknown``.
    """
    n = len(table)
    regions, sources = [UNKNOWN] * n, ["none"] * n
    column = region_column(table)
    if column is not None:
        for i, value in enumerate(table[column].tolist()):
            if isinstance(value, str) and value.strip() and value.strip().lower() != "n/a":
                regions[i], sources[i] = value.strip(), "electrodes.tsv"
    missing = [i for i in range(n) if sources[i] == "none"]
    if atlas is not None and missing and {"x", "y", "z"} <= set(table.columns):
        xyz = table.iloc[missing][["x", "y", "z"]].apply(pd.to_numeric, errors="coerce").to_numpy()
        for i, name in zip(missing, atlas_labels(millimetres(xyz, units), atlas)):
            regions[i], sources[i] = name, atlas.source
    return regions, sources

def load_atlas(image: Path | None, labels: Path | None) -> Atlas | None:
    """Read ``--atlas`` (NIfTI label image) and ``--atlas-labels`` (TSV with index and name columns)."""
    if image is None and labels is None:
        return None
    if image is None or labels is None:
        raise UsageError(f"{image or labels}: --atlas and --atlas-labels must be given together")
    import nibabel as nib

    try:
        img = nib.load(str(image))
        data = np.asarray(img.dataobj)
    except FileNotFoundError:
        raise UsageError(f"{image}: atlas image not found") from None
    except Exception as exc:  # nibabel raises several types for a file that is not an image
        raise UsageError(f"{image}: not a readable NIfTI label image ({str(exc).splitlines()[0]})") from None
    if data.ndim < 3 or (data.ndim > 3 and any(s != 1 for s in data.shape[3:])):
        raise UsageError(f"{image}: atlas must be a 3-d label image, got shape {data.shape}")
    data = data.reshape(data.shape[:3])
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.allclose(data, np.round(data)):
            raise UsageError(f"{image}: atlas voxels must hold integer labels")
        data = np.round(data).astype(np.int64)
    try:
        table = pd.read_csv(labels, sep="\t", keep_default_na=False)
    except FileNotFoundError:
        raise UsageError(f"{labels}: atlas label table not found") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise UsageError(f"{labels}: unreadable atlas label table ({str(exc).splitlines()[0]})") from None
    if not {"index", "name"} <= set(table.columns):
        raise UsageError(f"{labels}: atlas label table needs 'index' and 'name' columns (found: "
                         f"{', '.join(map(str, table.columns))})")
    index = pd.to_numeric(table["index"], errors="coerce")
    if index.isna().any() or not np.allclose(index, np.round(index)):
        raise UsageError(f"{labels}: 'index' column must hold integers")
    names = dict(zip(index.astype(int).tolist(), table["name"].astype(str).tolist()))
    return Atlas(data=data, affine=np.asarray(img.affine, float), names=names, source=Path(image).name)
