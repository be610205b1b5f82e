"""filmcolor.evaluate on a synthetic clip with stand-in colorizers (no model needed)."""

import json
import math

import cv2
import numpy as np
import pytest

from filmcolor.color import rgb_to_lab_np
from filmcolor.config import RunConfig
from filmcolor.evaluate import evaluate, format_table, to_json
from filmcolor.synth import make_clip


class _Grey:
    """Predicts a = b = 0: the output is the grey input."""

    def render_shape(self, h, w):
        return (32, round(w * 32 / h))

    def predict_ab(self, L):
        return np.zeros((L.shape[0], 2) + L.shape[1:], np.float32)


class _Oracle(_Grey):
    """Returns the reference's own ab at render size, frame by frame (as decoded by the test)."""

    def __init__(self, path):
        import av

        self.abs = []
        with av.open(str(path)) as c:
            for f in c.decode(video=0):
                lab = rgb_to_lab_np(f.to_ndarray(format="rgb24"))
                rh, rw = self.render_shape(*lab.shape[:2])
                ab = cv2.resize(lab[..., 1:], (rw, rh), interpolation=cv2.INTER_AREA)
                self.abs.append(ab.transpose(2, 0, 1))

    def predict_ab(self, L):
        out, self.abs = np.stack(self.abs[:L.shape[0]]), self.abs[L.shape[0]:]
        return out.astype(np.float32)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("eval") / "square.mp4", frames=12, width=96, height=64, audio=())


def test_grey_colorizer_scores_like_grey(clip):
    cfg = RunConfig(smooth="flow", batch_size=4)
    res = evaluate([clip, clip], cfg, max_frames=10, colorizer=_Grey(), flow_scale=1.0, dis_preset="fast")
    assert res["settings"]["flow_scale"] == 1.0 and res["settings"]["preset"] == "fast"
    row = res["clips"][0]
    assert row["frames"] == 10
    out, grey, ref = row["output"], row["grey"], row["reference"]
    for k in ("psnr", "ssim", "ciede2000", "cdc", "warp_error", "warp_error_ab"):
        assert out[k] == pytest.approx(grey[k], rel=1e-5, abs=1e-7), k
    assert grey["warp_error_ab"] == 0.0 and out["warp_error_ab"] == 0.0  # a = b = 0 by definition
    assert ref["warp_error_ab"] > 0  # the square's colour moves across a coloured background
    assert grey["colourfulness"] == pytest.approx(0.0, abs=1e-3)  # OpenCV Lab->RGB rounding
    assert ref["colourfulness"] > 20 and ref["ciede2000"] == 0.0 and ref["psnr"] == math.inf
    assert grey["ciede2000"] > 5
    assert 0 <= ref["cdc"] < 0.2 and ref["warp_error"] >= 0
    assert res["mean"]["output"]["psnr"] == pytest.approx(out["psnr"])
    table = format_table(res)
    assert len(res["clips"]) == 2 and "mean" in table
    assert "square.mp4" in table and "warp err" in table and "warp ab" in table and "inf" in table
    parsed = json.loads(to_json(res))
    assert parsed["clips"][0]["reference"]["psnr"] is None and parsed["settings"]["smooth"] == "flow"


def test_oracle_colorizer_beats_grey(clip):
    res = evaluate([clip], RunConfig(smooth="off", batch_size=5), colorizer=_Oracle(clip))
    out, grey = res["clips"][0]["output"], res["clips"][0]["grey"]
    assert res["clips"][0]["frames"] == 12
    assert out["ciede2000"] < 0.3 * grey["ciede2000"]
    assert out["psnr"] > grey["psnr"] + 5
    assert out["colourfulness"] > 20
    # the oracle's chroma is the reference's (at render size): its a/b warp error is close to it
    ref = res["clips"][0]["reference"]
    assert 0 < out["warp_error_ab"] < 2 * ref["warp_error_ab"]


def test_bad_arguments(clip):
    with pytest.raises(ValueError):
        evaluate([clip], RunConfig(), max_frames=0, colorizer=_Grey())
    with pytest.raises(ValueError, match="DIS preset"):
        evaluate([clip], RunConfig(smooth="flow"), colorizer=_Grey(), dis_preset="slowest")


def test_a_black_and_white_reference_is_flagged(clip, tmp_path):
    bw = make_clip(tmp_path / "bw.mp4", frames=6, width=96, height=64, audio=(), color=False)
    result = evaluate([clip, bw], RunConfig(smooth="off"), colorizer=_Grey())
    colour, grey = result["clips"]
    assert "note" not in colour
    assert grey["note"].startswith("the reference has almost no colour")
    assert f"note: bw.mp4: {grey['note']}" in format_table(result).splitlines()


def test_a_broken_reference_is_named_and_the_others_are_scored(clip, tmp_path):
    # the first unreadable clip stopped the whole evaluation, the clips after it unscored
    from filmcolor.errors import InputError

    broken = tmp_path / "broken.mp4"
    broken.write_text("not a film " * 20)
    result = evaluate([broken, clip], RunConfig(smooth="off"), max_frames=4, colorizer=_Grey())
    assert [c["path"] for c in result["clips"]] == [str(clip)] and result["clips"][0]["frames"] == 4
    assert result["failed"] == [{"path": str(broken), "error": f"{broken}: not a media file (it contains text)",
                                 "exit_code": 1}]
    assert json.loads(to_json(result))["failed"][0]["path"] == str(broken)
    with pytest.raises(InputError, match="not a media file"):  # alone, or with nothing readable: an error
        evaluate([broken], RunConfig(smooth="off"), colorizer=_Grey())
    with pytest.raises(InputError, match="no reference could be read"):
        evaluate([broken, broken], RunConfig(smooth="off"), colorizer=_Grey())
