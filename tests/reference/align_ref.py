"""Independent NumPy reference for the 5-point alignment and the bilinear warp/resize.

Umeyama (1991) through the SVD of the cross-covariance (not the closed complex form the Rust code
uses), and a vectorised bilinear sampler written from the definition (cv2.warpAffine's
coordinate convention, constant border 0; OpenCV resize's pixel-centre rule with replicated
edges). No OpenCV, no scikit-image.

    python3 tests/reference/align_ref.py > tests/fixtures/align/align_ref.json
"""
import json

import numpy as np

TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)


def umeyama(src, dst):
    """Similarity (rotation, scale, translation) minimising sum |dst - T(src)|^2."""
    n, m = src.shape
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    cov = dc.T @ sc / n
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(m)
    if np.linalg.det(cov) < 0:
        d[-1] = -1
    r = u @ np.diag(d) @ vt
    var_s = (sc**2).sum() / n
    c = (s * d).sum() / var_s
    t = mu_d - c * r @ mu_s
    return np.hstack([c * r, t[:, None]])


def synthetic(w, h):
    """uint8 (h, w, 3) test image: value(x, y, c) = (7x + 13y + 50c + (x*y) % 11) % 256."""
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return ((7 * x + 13 * y + 50 * c + (x * y) % 11) % 256).astype(np.uint8)


def sample(img, inv, out_w, out_h, border):
    h, w, _ = img.shape
    ys, xs = np.meshgrid(np.arange(out_h, dtype=np.float64), np.arange(out_w, dtype=np.float64), indexing="ij")
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    f = img.astype(np.float64)

    def px(xi, yi):
        if border == "zero":
            inside = ((xi >= 0) & (xi < w) & (yi >= 0) & (yi < h))[..., None]
            v = f[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
            return np.where(inside, v, 0.0)
        return f[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]

    top = px(x0, y0) * (1 - fx) + px(x0 + 1, y0) * fx
    bottom = px(x0, y0 + 1) * (1 - fx) + px(x0 + 1, y0 + 1) * fx
    return top * (1 - fy) + bottom * fy


def summary(out, rng):
    pts = [(int(rng.integers(0, out.shape[1])), int(rng.integers(0, out.shape[0])), int(rng.integers(0, 3))) for _ in range(40)]
    return {
        "channel_sums": [float(out[..., c].sum()) for c in range(3)],
        "samples": [[x, y, c, float(out[y, x, c])] for x, y, c in pts],
    }


def main():
    rng = np.random.default_rng(3)
    # Landmarks on a 1/64 grid: exactly representable as f32, so Rust and NumPy see the same input.
    q = lambda a: np.round(np.asarray(a, dtype=np.float64) * 64) / 64
    lm_cases = {
        "lfw_like_250": q([[103.2, 112.7], [146.9, 111.1], [125.4, 136.8], [106.6, 160.2], [143.5, 158.9]]),
        "rotated_tilted": q([[20.5, 30.25], [44.0, 22.75], [35.5, 40.0], [30.0, 55.5], [50.25, 48.0]]),
        "noisy_template": q(TEMPLATE + rng.normal(0, 1.5, TEMPLATE.shape)),
        "mirrored_order": q([[70.0, 50.0], [40.0, 50.0], [55.0, 70.0], [68.0, 90.0], [42.0, 90.0]]),
    }
    cases = []
    for name, lm in lm_cases.items():
        m = umeyama(lm, TEMPLATE)
        case = {"name": name, "landmarks": lm.tolist(), "matrix": m.tolist()}
        if name == "rotated_tilted":
            img = synthetic(64, 48)
            inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
            case["warp"] = {"width": 64, "height": 48, **summary(sample(img, inv, 112, 112, "zero"), rng)}
        cases.append(case)
    img = synthetic(64, 48)
    sx, sy = 64 / 112, 48 / 112
    inv = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]])
    resize = {"width": 64, "height": 48, **summary(sample(img, inv, 112, 112, "replicate"), rng)}
    print(json.dumps({"template": TEMPLATE.tolist(), "cases": cases, "resize": resize}, indent=1))


if __name__ == "__main__":
    main()
