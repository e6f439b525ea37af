"""mira's grey level co-occurrence features against scikit-image (graycomatrix and
graycoprops, an independent implementation): on 2D images of random grey levels, the four
in-plane directions at distance 1, symmetric, each direction's matrix apart (2D_avg) and the
four merged (2D_comb)."""
import json

import nibabel as nib
import numpy as np
import pytest
from skimage.feature import graycomatrix, graycoprops

from conftest import run_mira

ANGLES = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
# scikit-image's property: mira's tag (ASM is IBSI's energy; homogeneity its inverse difference
# moment)
PROPS = {"contrast": "contrast", "dissimilarity": "dissimilarity", "homogeneity": "inv_diff_mom",
         "ASM": "energy", "correlation": "corr"}


def mira_cm(tmp_path, levels):
    img = tmp_path / "img.nii.gz"
    mask = tmp_path / "mask.nii.gz"
    a = (levels + 1).astype(np.int16)[:, :, None]  # mira's grey levels start at 1
    nib.save(nib.Nifti1Image(a, np.eye(4)), str(img))
    nib.save(nib.Nifti1Image(np.ones_like(a, dtype=np.uint8), np.eye(4)), str(mask))
    return json.loads(run_mira("features", "--json", "--families", "cm", img, mask).stdout)


@pytest.mark.parametrize("seed, shape, ng", [(1, (40, 50), 8), (2, (64, 64), 32),
                                            (3, (7, 90), 4)])
def test_glcm_2d_agrees_with_scikit_image(tmp_path, seed, shape, ng):
    rng = np.random.default_rng(seed)
    levels = rng.integers(0, ng, shape).astype(np.uint8)
    levels[0, 0], levels[-1, -1] = 0, ng - 1  # every level from 0 to ng - 1 in range
    got = mira_cm(tmp_path, levels)
    counts = graycomatrix(levels, [1], ANGLES, levels=ng, symmetric=True, normed=False)
    per_angle = counts / counts.sum(axis=(0, 1), keepdims=True)
    merged = counts.sum(axis=3, keepdims=True).astype(float)
    merged /= merged.sum()
    for prop, tag in PROPS.items():
        avg = graycoprops(per_angle, prop).mean()
        comb = graycoprops(merged, prop)[0, 0]
        assert got[f"cm_{tag}_2D_avg"] == pytest.approx(avg, rel=1e-9, abs=1e-12), prop
        assert got[f"cm_{tag}_2D_comb"] == pytest.approx(comb, rel=1e-9, abs=1e-12), prop
    # one slice: 2.5D is 2D; the 3D directions out of the slice find no pairs
    for prop, tag in PROPS.items():
        assert got[f"cm_{tag}_2_5D_avg"] == pytest.approx(got[f"cm_{tag}_2D_avg"])
        assert got[f"cm_{tag}_2_5D_comb"] == pytest.approx(got[f"cm_{tag}_2D_comb"])
