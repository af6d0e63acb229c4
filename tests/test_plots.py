"""Plots: rendered to PNG and measured (true ECG scale, paper grid, saliency, contours, scale bar)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from dataclasses import replace
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest

from mayo_dx.ecg import generate_ecg, read
from mayo_dx.errors import InputError, MissingDependency, UnreadableFile, UnsupportedFormat
from mayo_dx.imaging import CtVolume, LesionSpec, generate_phantom
from tests.conftest import PROJECT_ROOT

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")

DPI = 100
PANCREAS_RGB, LESION_RGB = (0, 230, 118), (255, 23, 68)  # MASK_COLOURS in plots_ct

# A shortened metrics.csv as Lightning 2.6 CSVLogger wrote it (LearningRateMonitor, step and epoch logging).
LIGHTNING_METRICS_CSV = """epoch,lr-Adam,step,train_loss_epoch,train_loss_step,val_accuracy,val_loss
,0.01,0,,,,
0,,3,,0.6886286735534668,,
0,,7,,0.6462655663490295,,
0,,15,,,0.826171875,0.5431743860244751
0,,15,0.6347019672393799,,,
,0.01,16,,,,
1,,19,,0.41716909408569336,,
1,,31,,,0.900390625,0.3580251336097717
1,,31,0.45963025093078613,,,
,0.005,64,,,,
2,,47,,,0.9609375,0.21664118766784668
2,,47,0.28942403197288574,,,
"""


def png_pixels(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(BytesIO(data)).convert("RGB")).astype(np.int16)


def near(pixels: np.ndarray, rgb: tuple[int, int, int], tolerance: int) -> np.ndarray:
    return (np.abs(pixels - np.array(rgb)) <= tolerance).all(axis=-1)


def artists(figure, gid: str) -> list:
    return [artist for artist in figure.findobj() if getattr(artist, "get_gid", lambda: None)() == gid]


@pytest.fixture(scope="module")
def record(waveform_ecg_path: Path):
    return read(waveform_ecg_path)


@pytest.fixture(scope="module")
def twelve_lead(record):
    from mayo_dx.plots import figure_to_png_bytes, plot_ecg_12lead

    figure = plot_ecg_12lead(record, title="pydicom waveform_ecg.dcm")
    return figure, figure_to_png_bytes(figure, dpi=DPI)


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(shape=(40, 96, 96), lesions=[LesionSpec(25, "head")], seed=3)


# ---------------------------------------------------------------- ECG 12-lead sheet


@needs_matplotlib
def test_12lead_paper_is_true_to_scale(twelve_lead) -> None:
    figure, png = twelve_lead
    width_mm, height_mm = (size * 25.4 for size in figure.get_size_inches())
    paper_width, paper_height = 10 + 4 * 2.5 * 25, 4 * 40  # calibration + 4 columns x 2.5 s x 25 mm/s
    assert (round(width_mm, 3), round(height_mm, 3)) == (paper_width + 16, paper_height + 30)
    expected = np.array([height_mm, width_mm]) / 25.4 * DPI
    assert np.abs(np.array(png_pixels(png).shape[:2]) - expected).max() < 1  # matplotlib truncates to whole pixels
    (paper,) = artists(figure, "paper")
    box = paper.get_window_extent()
    assert box.width / figure.dpi * 25.4 == pytest.approx(paper_width, abs=0.05)
    assert box.height / figure.dpi * 25.4 == pytest.approx(paper_height, abs=0.05)
    # one data unit is one millimetre of figure: 25 mm for 1 s, 10 mm for 1 mV
    origin, corner = paper.transData.transform([(0, 0), (25, 10)])
    assert (corner - origin) / figure.dpi * 25.4 == pytest.approx([25.0, 10.0], abs=1e-6)


@needs_matplotlib
def test_12lead_traces_use_25_mm_per_s_and_10_mm_per_mv(twelve_lead, record) -> None:
    figure, _ = twelve_lead
    columns = 2500  # samples in 2.5 s at 1000 Hz
    for lead, column in (("I", 0), ("aVR", 1), ("V2", 2), ("V6", 3)):
        (trace,) = artists(figure, f"trace-{lead}")
        x, y = trace.get_xdata(), trace.get_ydata()
        assert x[0] == pytest.approx(column * 62.5) and x[-1] - x[0] == pytest.approx((columns - 1) / 1000 * 25)
        segment = record.lead(lead)[column * columns : (column + 1) * columns]
        assert np.ptp(y) == pytest.approx(10 * np.ptp(segment), rel=1e-5)
        assert np.allclose(np.diff(y), 10 * np.diff(segment), atol=1e-4)
    (rhythm,) = artists(figure, "trace-rhythm-II")
    assert rhythm.get_xdata()[-1] == pytest.approx(9.999 * 25)
    assert np.ptp(rhythm.get_ydata()) == pytest.approx(10 * np.ptp(record.lead("II")), rel=1e-5)
    pulses = artists(figure, "calibration")
    assert len(pulses) == 4
    for pulse in pulses:  # 1 mV high, 200 ms wide
        x, y = np.asarray(pulse.get_xdata()), np.asarray(pulse.get_ydata())
        assert np.ptp(y) == pytest.approx(10.0) and np.ptp(x[y == y.max()]) == pytest.approx(5.0)
    gids = {artist: getattr(artist, "get_gid", lambda: None)() or "" for artist in figure.findobj()}
    labels = [artist.get_text() for artist, gid in gids.items() if gid.startswith("label-")]
    assert labels == ["I", "aVR", "V1", "V4", "II", "aVL", "V2", "V5", "III", "aVF", "V3", "V6", "II"]


@needs_matplotlib
def test_12lead_grid_is_drawn_every_1_and_5_mm(twelve_lead) -> None:
    figure, png = twelve_lead
    (minor,) = artists(figure, "grid-minor")
    (major,) = artists(figure, "grid-major")
    assert len(minor.get_segments()) == (261 - 53) + (161 - 33)  # x -10..250, y 0..160 mm
    assert len(major.get_segments()) == 53 + 33
    pixels = png_pixels(png)
    paper = pixels[round(20 / 25.4 * DPI) : round(176 / 25.4 * DPI), round(10 / 25.4 * DPI) : round(266 / 25.4 * DPI)]
    pinkness = (paper[..., 0] - paper[..., 1]).astype(float)  # red minus green: 0 on white or black, high on grid
    assert (pinkness > 40).mean() > 0.03 and (pinkness > 15).mean() > 0.15
    # vertical grid lines repeat every 1 mm (minor) and 5 mm (major) across the rendered paper
    profile = pinkness.mean(axis=0) - pinkness.mean()
    spectrum = np.abs(np.fft.rfft(profile))
    periods_mm = np.full(spectrum.shape, np.inf)
    periods_mm[1:] = len(profile) / np.arange(1, len(spectrum)) / DPI * 25.4
    for low, high, expected in ((0.6, 2.0, 1.0), (2.5, 12.0, 5.0)):
        band = np.flatnonzero((periods_mm > low) & (periods_mm < high))
        assert periods_mm[band[np.argmax(spectrum[band])]] == pytest.approx(expected, rel=0.03)


@needs_matplotlib
def test_12lead_saliency_shades_only_its_time_span(record, twelve_lead) -> None:
    from mayo_dx.plots import figure_to_png_bytes, plot_ecg_12lead

    saliency = np.zeros(record.signal.shape)
    saliency[:, 2000:3000] = 1.0  # 2-3 s: the end of column 1 and the start of column 2
    figure = plot_ecg_12lead(record, saliency=saliency, title="pydicom waveform_ecg.dcm")
    shaded = png_pixels(figure_to_png_bytes(figure, dpi=DPI))
    plain = png_pixels(twelve_lead[1])
    paper_rows = slice(round(18 / 25.4 * DPI) + 2, round((18 + 160) / 25.4 * DPI) - 2)  # skip title and footer
    changed = (np.abs(shaded - plain).sum(axis=-1) > 30)[paper_rows]
    assert changed.mean() > 0.02
    columns_mm = np.flatnonzero(changed.any(axis=0)) / DPI * 25.4 - 8 - 10  # figure x -> paper time axis (mm)
    assert columns_mm.min() == pytest.approx(2.0 * 25, abs=0.6) and columns_mm.max() == pytest.approx(3.0 * 25, abs=0.6)
    with pytest.raises(InputError, match="shape"):
        plot_ecg_12lead(record, saliency=saliency[:, :100])
    with pytest.raises(InputError, match="non-negative"):
        plot_ecg_12lead(record, saliency=-saliency)


@needs_matplotlib
def test_12lead_names_missing_leads_and_short_records(record) -> None:
    from mayo_dx.plots import plot_ecg_12lead

    without = replace(record, missing_leads=("II", "V3"))
    figure = plot_ecg_12lead(without)
    assert [text.get_text() for text in artists(figure, "missing-V3")] == ["V3 missing"]
    assert [text.get_text() for text in artists(figure, "missing-rhythm-II")] == ["II missing"]
    assert not artists(figure, "trace-V3") and not artists(figure, "trace-rhythm-II") and artists(figure, "trace-V2")
    figure = plot_ecg_12lead(generate_ecg(["NORM"], duration_s=5.0, seed=0))
    assert [text.get_text() for text in artists(figure, "missing-V1")] == ["no data"]
    assert artists(figure, "trace-aVF")


@needs_matplotlib
def test_12lead_draws_no_identifiers(waveform_ecg_path: Path, twelve_lead) -> None:
    import pydicom

    dataset = pydicom.dcmread(waveform_ecg_path, stop_before_pixels=True)
    keywords = ("PatientName", "PatientID", "PatientBirthDate", "StudyDate")
    identifiers = [str(dataset.get(keyword, "")) for keyword in keywords]
    identifiers = [value for value in identifiers if len(value) >= 3]
    assert identifiers, "the sample file should carry identifiers to check against"
    figure, _ = twelve_lead
    texts = " ".join(text.get_text() for text in figure.findobj() if hasattr(text, "get_text"))
    assert not any(value in texts for value in identifiers)
    assert "25 mm/s" in texts and "10 mm/mV" in texts


@needs_matplotlib
def test_12lead_rejects_bad_input(record) -> None:
    from mayo_dx.plots import plot_ecg_12lead

    with pytest.raises(InputError):
        plot_ecg_12lead(record.signal)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="start_s"):
        plot_ecg_12lead(record, start_s=10.0)


@needs_matplotlib
def test_stacked_view_renders_twelve_panels_with_saliency(record) -> None:
    from mayo_dx.plots import figure_to_png_bytes, plot_ecg_stacked

    without_v3 = replace(record, missing_leads=("V3",))
    figure = plot_ecg_stacked(without_v3)
    assert len(figure.axes) == 12 and [axes.get_ylabel() for axes in figure.axes][:3] == ["I", "II", "III"]
    assert figure.axes[0].get_xlim() == pytest.approx((0.0, 10.0))
    assert artists(figure, "missing-V3") and not artists(figure, "trace-V3")
    plain = png_pixels(figure_to_png_bytes(figure, dpi=60))
    assert np.abs(np.array(plain.shape[:2]) - figure.get_size_inches()[::-1] * 60).max() < 1
    assert (plain.sum(axis=-1) < 200).mean() > 0.001  # dark trace pixels
    saliency = np.zeros(record.signal.shape)
    saliency[0, 4000:5000] = 2.0
    shaded = png_pixels(figure_to_png_bytes(plot_ecg_stacked(without_v3, saliency=saliency), dpi=60))
    assert (np.abs(shaded - plain).sum(axis=-1) > 30).mean() > 0.002


@needs_matplotlib
def test_png_helpers_write_real_png(tmp_path: Path, twelve_lead) -> None:
    from mayo_dx.plots import save_png

    figure, png = twelve_lead
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 50_000
    path = save_png(figure, tmp_path / "out" / "ecg", dpi=50)
    assert path == tmp_path / "out" / "ecg.png" and path.read_bytes().startswith(b"\x89PNG")
    assert abs(png_pixels(path.read_bytes()).shape[1] - figure.get_size_inches()[0] * 50) < 1
    with pytest.raises(InputError):
        save_png(object(), tmp_path / "x.png")  # type: ignore[arg-type]


# ---------------------------------------------------------------- CT


@needs_matplotlib
def test_ct_montage_draws_coloured_contours_only_with_masks(phantom, tmp_path: Path) -> None:
    from mayo_dx.plots import plot_ct_montage, save_png

    masks = {"pancreas": phantom.labels == 1, "lesion": phantom.labels == 2}
    path = save_png(plot_ct_montage(phantom.volume, masks=masks), tmp_path / "montage.png", dpi=80)
    with_masks = png_pixels(path.read_bytes())
    assert near(with_masks, PANCREAS_RGB, 40).sum() > 200
    assert near(with_masks, LESION_RGB, 40).sum() > 50
    plain = png_pixels(save_png(plot_ct_montage(phantom.volume), tmp_path / "plain.png", dpi=80).read_bytes())
    spread = plain.max(axis=-1) - plain.min(axis=-1)
    assert spread.max() < 20  # greyscale and white text only
    assert (plain.sum(axis=-1) > 300).mean() > 0.05  # the body is visible in the soft-tissue window


@needs_matplotlib
def test_ct_montage_slices_follow_masks_and_scale_bar_is_in_mm(phantom) -> None:
    from mayo_dx.plots import plot_ct_montage

    masks = {"pancreas": phantom.labels == 1, "lesion": phantom.labels == 2}
    figure = plot_ct_montage(phantom.volume, masks=masks, n_slices=6)
    texts = [text.get_text() for text in artists(figure, "slice-position")]
    positions = [float(re.search(r"[-+]\d+\.\d", text).group()) for text in texts]
    occupied = np.flatnonzero((phantom.labels > 0).any(axis=(1, 2)))
    world_z = [phantom.volume.index_to_world((index, 0, 0))[2] for index in (occupied.min(), occupied.max())]
    assert len(positions) == 6 and min(world_z) - 0.1 <= min(positions) and max(positions) <= max(world_z) + 0.1
    largest_lesion = int(np.argmax((phantom.labels == 2).sum(axis=(1, 2))))
    assert round(phantom.volume.index_to_world((largest_lesion, 0, 0))[2], 1) in positions
    (bar,) = artists(figure, "scale-bar")
    (label,) = artists(figure, "scale-bar-label")
    length = float(label.get_text().split()[0])
    assert np.ptp(bar.get_xdata()) == pytest.approx(length)
    panel = bar.axes
    assert np.ptp(panel.get_xlim()) == pytest.approx(phantom.volume.extent_mm[2], rel=1e-6)  # data units are mm
    legend_texts = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
    assert legend_texts == ["pancreas", "lesion"]


@needs_matplotlib
def test_ct_views_keep_physical_aspect_and_orientation() -> None:
    from mayo_dx.plots import figure_to_png_bytes, plot_ct_montage, plot_ct_orthogonal

    rng = np.random.default_rng(0)
    hu = rng.integers(-150, 230, size=(10, 40, 80)).astype(np.int16)  # 2.5 x 1.0 x 0.5 mm: 25 x 40 x 40 mm
    volume = CtVolume(hu=hu, spacing=(2.5, 1.0, 0.5), origin=(0.0, 0.0, 0.0))
    figure = plot_ct_montage(volume, n_slices=1)
    figure.canvas.draw()
    box = figure.axes[0].get_window_extent()
    assert box.width / box.height == pytest.approx(1.0, abs=0.02)
    orthogonal = plot_ct_orthogonal(volume, center=(5, 20, 40))
    orthogonal.canvas.draw()
    axial, coronal, sagittal = (axes.get_window_extent() for axes in orthogonal.axes)
    assert coronal.width / coronal.height == pytest.approx(40 / 25, abs=0.03)
    assert sagittal.width / sagittal.height == pytest.approx(40 / 25, abs=0.03)
    # the same patient stored right-to-left draws the same picture
    flip_x = np.diag([-1.0, 1.0, 1.0])
    mirrored = CtVolume(hu=hu[:, :, ::-1], spacing=(2.5, 1.0, 0.5), origin=(39.5, 0.0, 0.0), direction=flip_x)
    assert np.array_equal(
        png_pixels(figure_to_png_bytes(plot_ct_montage(volume, n_slices=2), dpi=40)),
        png_pixels(figure_to_png_bytes(plot_ct_montage(mirrored, n_slices=2), dpi=40)),
    )


@needs_matplotlib
def test_ct_orthogonal_centres_on_the_lesion(phantom) -> None:
    from mayo_dx.plots import figure_to_png_bytes, plot_ct_orthogonal

    masks = {"pancreas": phantom.labels == 1, "lesion": phantom.labels == 2}
    figure = plot_ct_orthogonal(phantom.volume, masks)
    lesion_z = int(round(np.argwhere(phantom.labels == 2)[:, 0].mean()))
    expected = phantom.volume.index_to_world((lesion_z, 0, 0))[2]
    assert figure.axes[0].get_title() == f"axial  z {expected:+.1f} mm"
    pixels = png_pixels(figure_to_png_bytes(figure, dpi=60))
    assert near(pixels, LESION_RGB, 40).sum() > 20 and near(pixels, PANCREAS_RGB, 40).sum() > 20


@needs_matplotlib
def test_ct_plots_reject_bad_input(phantom) -> None:
    from mayo_dx.plots import plot_ct_montage, plot_ct_orthogonal

    with pytest.raises(InputError, match="shape"):
        plot_ct_montage(phantom.volume, masks={"pancreas": np.zeros((2, 2, 2), bool)})
    with pytest.raises(InputError, match="window"):
        plot_ct_montage(phantom.volume, window=(240, -160))
    with pytest.raises(InputError, match="n_slices"):
        plot_ct_montage(phantom.volume, n_slices=0)
    with pytest.raises(InputError, match="center"):
        plot_ct_orthogonal(phantom.volume, center=(400, 0, 0))


# ---------------------------------------------------------------- training curves


@needs_matplotlib
def test_training_curves_from_lightning_csv(tmp_path: Path) -> None:
    from mayo_dx.plots import figure_to_png_bytes, plot_training_curves

    path = tmp_path / "metrics.csv"
    path.write_text(LIGHTNING_METRICS_CSV)
    figure = plot_training_curves(path)
    assert [axes.get_title() for axes in figure.axes] == ["loss", "metrics", "learning rate"]
    lines = {line.get_label(): line for axes in figure.axes for line in axes.get_lines()}
    assert sorted(lines) == ["lr-Adam", "train_loss_epoch", "train_loss_step", "val_accuracy", "val_loss"]
    assert lines["val_loss"].get_xdata().tolist() == [15, 31, 47]
    assert lines["val_loss"].get_ydata() == pytest.approx([0.5431743860244751, 0.3580251336097717, 0.21664118766784668])
    assert figure.axes[1].get_ylim() == pytest.approx((-0.02, 1.02))
    assert png_pixels(figure_to_png_bytes(figure, dpi=50)).shape[:2] == (190, 750)
    no_rate = tmp_path / "no_rate.csv"
    no_rate.write_text("epoch,step,val_loss\n0,9,0.5\n1,19,0.4\n")
    assert [axes.get_title() for axes in plot_training_curves(no_rate).axes] == ["loss", "metrics"]


@needs_matplotlib
def test_training_curves_reject_unusable_files(tmp_path: Path) -> None:
    from mayo_dx.plots import plot_training_curves

    with pytest.raises(UnreadableFile):
        plot_training_curves(tmp_path / "absent.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("epoch,step,val_loss\n0,9,\n")
    with pytest.raises(UnsupportedFormat):
        plot_training_curves(empty)


# ---------------------------------------------------------------- optional dependency


def test_plots_import_without_matplotlib_or_torch() -> None:
    code = (
        "import json, sys\nimport mayo_dx.plots\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'torch'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_missing_matplotlib_gives_install_hint(monkeypatch: pytest.MonkeyPatch, record) -> None:
    from mayo_dx.plots import plot_ecg_12lead

    for name in [name for name in sys.modules if name == "matplotlib" or name.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependency, match=r'pip install "mayo-dx\[plot\]"'):
        plot_ecg_12lead(record)
