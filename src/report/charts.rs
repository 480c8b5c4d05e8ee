//! PNG charts for the HTML report: ROC (log FAR), DET (log FAR × log FRR) and score histograms.
//!
//! Drawn with plotters into an in-memory RGB buffer and encoded with `png`, so the bytes can go
//! through `write_atomic` and the output is identical for identical inputs. Text uses the
//! embedded DejaVu Sans (plotters' `ab_glyph` path): no fontconfig or system fonts needed.
//! Legends are drawn in a band below the plot so they never cover a curve.

use crate::error::{Error, Result};
use crate::protocol::curves::{Curves, RocCurve};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::OnceLock;

/// DejaVu Sans, Bitstream Vera licence (assets/fonts/LICENSE-DejaVu.txt).
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FONT: &str = "sans-serif";

/// Chart width in pixels; the HTML scales images down to the page width.
pub const WIDTH: u32 = 1000;
const PLOT_HEIGHT: u32 = 640;
const LEGEND_ROW: u32 = 28;
const LEGEND_PAD: u32 = 12;
const LEGEND_FONT: f64 = 17.0;
const SWATCH: i32 = 34;

/// Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];
const GENUINE: RGBColor = RGBColor(0, 114, 178);
const IMPOSTOR: RGBColor = RGBColor(213, 94, 0);
const THRESHOLD_COLORS: [RGBColor; 5] =
    [RGBColor(0, 0, 0), RGBColor(0, 158, 115), RGBColor(204, 121, 167), RGBColor(230, 159, 0), RGBColor(86, 180, 233)];
const SHADE: RGBColor = RGBColor(225, 225, 225);

/// Registers the embedded font with plotters once per process.
pub fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid("the embedded chart font (assets/fonts/DejaVuSans.ttf) is not a valid TrueType font".into()))
    }
}

/// One run's curve on a ROC or DET chart.
#[derive(Debug, Clone)]
pub struct RocSeries<'a> {
    pub label: String,
    pub roc: &'a RocCurve,
    /// Impostor pairs: FAR below 1/N is not measurable and is not drawn.
    pub n_impostor: u64,
    /// Genuine pairs: FRR below 1/N is not measurable (DET y axis).
    pub n_genuine: u64,
    /// Operating points to mark: (achieved FAR, TAR).
    pub points: Vec<(f64, f64)>,
    /// Equal error rate, marked on the DET chart.
    pub eer: Option<f64>,
}

impl RocSeries<'_> {
    /// Vertices with FAR > 0 (log axis), in ascending FAR, finite only.
    fn positive_vertices(&self) -> Vec<(f64, f64)> {
        self.roc
            .far
            .iter()
            .zip(&self.roc.tar)
            .filter(|(f, t)| f.is_finite() && t.is_finite() && **f > 0.0)
            .map(|(&f, &t)| (f, t))
            .collect()
    }

    fn min_far(&self) -> f64 {
        if self.n_impostor > 0 {
            1.0 / self.n_impostor as f64
        } else {
            self.positive_vertices().first().map_or(1e-6, |v| v.0)
        }
    }

    fn check(&self) -> Result<()> {
        if self.roc.far.len() != self.roc.tar.len() {
            return Err(Error::Invalid(format!(
                "curves of {}: ROC has {} FAR values but {} TAR values",
                self.label,
                self.roc.far.len(),
                self.roc.tar.len()
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Swatch {
    Line(RGBColor),
    Dashed(RGBColor),
    Marker(RGBColor),
    Cross(RGBColor),
    Fill(RGBColor),
}

struct Legend {
    entries: Vec<(Swatch, String)>,
    /// Per entry: (row, x offset).
    place: Vec<(u32, i32)>,
    height: u32,
}

/// `c` at opacity `a` over white, for legend swatches of translucent fills.
fn tint(c: RGBColor, a: f64) -> RGBColor {
    let mix = |v: u8| (a * v as f64 + (1.0 - a) * 255.0).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

fn font(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

fn text_width(text: &str, size: f64) -> u32 {
    // Measurement only fails when the font is missing, which ensure_font rules out; the fallback
    // estimate keeps layout sane regardless.
    (FONT, size).into_font().box_size(text).map_or((text.chars().count() as f64 * size * 0.6) as u32, |b| b.0)
}

/// Flows legend entries left to right, wrapping at the chart width.
fn layout_legend(entries: Vec<(Swatch, String)>) -> Legend {
    let usable = WIDTH as i32 - 2 * LEGEND_PAD as i32 - 40;
    let (mut row, mut x) = (0u32, 0i32);
    let mut place = Vec::with_capacity(entries.len());
    for (_, label) in &entries {
        let w = SWATCH + 8 + text_width(label, LEGEND_FONT) as i32 + 26;
        if x > 0 && x + w > usable {
            row += 1;
            x = 0;
        }
        place.push((row, x));
        x += w;
    }
    let rows = if entries.is_empty() { 0 } else { row + 1 };
    Legend { entries, place, height: rows * LEGEND_ROW + 2 * LEGEND_PAD }
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn draw_legend(area: &Area<'_>, legend: &Legend) -> DrawResult {
    let left = 40 + LEGEND_PAD as i32;
    let style = font(LEGEND_FONT).pos(Pos::new(HPos::Left, VPos::Center));
    for ((swatch, label), &(row, x)) in legend.entries.iter().zip(&legend.place) {
        let x = left + x;
        let y = (LEGEND_PAD + row * LEGEND_ROW + LEGEND_ROW / 2) as i32;
        match *swatch {
            Swatch::Line(c) => area.draw(&PathElement::new(vec![(x, y), (x + SWATCH, y)], c.stroke_width(3)))?,
            Swatch::Dashed(c) => {
                area.draw(&DashedPathElement::new(vec![(x, y), (x + SWATCH, y)], 6, 4, c.stroke_width(2)))?
            }
            Swatch::Marker(c) => area.draw(&Circle::new((x + SWATCH / 2, y), 5, c.filled()))?,
            Swatch::Cross(c) => area.draw(&Cross::new((x + SWATCH / 2, y), 6, c.stroke_width(2)))?,
            Swatch::Fill(c) => {
                area.draw(&Rectangle::new([(x, y - 8), (x + SWATCH, y + 8)], c.filled()))?;
                area.draw(&Rectangle::new([(x, y - 8), (x + SWATCH, y + 8)], RGBColor(150, 150, 150)))?;
            }
        }
        area.draw(&Text::new(label.as_str(), (x + SWATCH + 8, y), style.clone()))?;
    }
    Ok(())
}

/// Renders a chart of WIDTH × (PLOT_HEIGHT + legend) and returns it as PNG bytes.
fn render(what: &str, legend: &Legend, draw: impl FnOnce(&Area<'_>) -> DrawResult) -> Result<Vec<u8>> {
    ensure_font()?;
    let height = PLOT_HEIGHT + legend.height;
    let mut buf = vec![255u8; WIDTH as usize * height as usize * 3];
    let fail = |e: Box<dyn std::error::Error>| Error::Invalid(format!("cannot draw the {what} chart: {e}"));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, height)).into_drawing_area();
        let result = (|| -> DrawResult {
            root.fill(&WHITE)?;
            let (plot, below) = root.split_vertically(PLOT_HEIGHT);
            draw(&plot)?;
            draw_legend(&below, legend)?;
            root.present()?;
            Ok(())
        })();
        result.map_err(fail)?;
    }
    encode_png(&buf, WIDTH, height)
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let fail = |e: png::EncodingError| Error::Invalid(format!("cannot encode a chart as PNG: {e}"));
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(fail)?;
    writer.write_image_data(rgb).map_err(fail)?;
    writer.finish().map_err(fail)?;
    Ok(out)
}

/// Largest power of ten ≤ x (with slack for log10 rounding), clamped to [1e-6, 0.1].
fn decade_floor(x: f64) -> f64 {
    let e = (x.max(1e-12).log10() + 1e-9).floor().clamp(-6.0, -1.0);
    10f64.powi(e as i32)
}

/// "10⁻³" for powers of ten, a plain number otherwise.
fn log_tick(v: &f64) -> String {
    const SUP: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let e = v.log10().round();
    if (v / 10f64.powf(e) - 1.0).abs() > 1e-6 {
        return format!("{v}");
    }
    if e == 0.0 {
        return "1".into();
    }
    let digits: String =
        format!("{}", e.abs() as i64).chars().map(|c| c.to_digit(10).map_or(c, |d| SUP[d as usize])).collect();
    format!("10{}{digits}", if e < 0.0 { "⁻" } else { "" })
}

/// Log axis from `lo` to 1, widened by a hair so plotters' tick search (ceil/accumulate in
/// floating point) does not drop the labels at the two ends.
fn log_range(lo: f64) -> plotters::coord::combinators::LogCoord<f64> {
    (lo * (1.0 - 1e-9)..1.0 + 1e-9).log_scale().into()
}

fn decades(lo: f64, hi: f64) -> usize {
    ((hi / lo).log10().round().max(1.0)) as usize + 1
}

/// The common frame of every chart: caption, margins and room for the axis labels.
fn plot_builder<'a, 'b>(area: &'a Area<'b>, title: &str) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, caption_style())
        .margin_top(12)
        .margin_left(16)
        .margin_right(36)
        .x_label_area_size(64)
        .y_label_area_size(84);
    builder
}

fn caption_style() -> TextStyle<'static> {
    font(26.0)
}

/// ROC with a log FAR axis from the decade below 1/N_impostor, with the operating points marked.
pub fn roc_chart(series: &[RocSeries<'_>], title: &str) -> Result<Vec<u8>> {
    ensure_font()?;
    series.iter().try_for_each(RocSeries::check)?;
    let measurable = series.iter().map(RocSeries::min_far).fold(1.0, f64::min);
    let x_lo = decade_floor(measurable);
    let curves: Vec<Vec<(f64, f64)>> = series.iter().map(|s| s.positive_vertices()).collect();
    let min_tar = curves
        .iter()
        .flatten()
        .map(|p| p.1)
        .chain(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)))
        .fold(1.0, f64::min);
    // TAR axis from a round value below the lowest drawn TAR: the interesting part of a good
    // model's ROC is squeezed against 1 on a 0–1 axis.
    let y_lo = ((min_tar - 0.02) * 10.0).floor().clamp(0.0, 9.0) / 10.0;
    let single = series.len() == 1;

    let mut entries = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        entries.push((Swatch::Line(c), if single { "ROC".to_string() } else { s.label.clone() }));
    }
    entries.push((Swatch::Marker(RGBColor(80, 80, 80)), "TAR@FAR operating points (strict rule)".into()));
    if x_lo < measurable {
        entries.push((Swatch::Fill(SHADE), "FAR < 1 / (impostor pairs): not measurable".into()));
    }
    let legend = layout_legend(entries);

    render("ROC", &legend, |area| {
        let mut chart = plot_builder(area, title).build_cartesian_2d(log_range(x_lo), y_lo..1.0)?;
        chart
            .configure_mesh()
            .x_labels(decades(x_lo, 1.0))
            .y_labels(11)
            .x_label_formatter(&log_tick)
            .y_label_formatter(&|v| format!("{v:.2}"))
            .x_desc("False accept rate (FAR)")
            .y_desc("True accept rate (TAR)")
            .label_style(font(17.0))
            .axis_desc_style(font(19.0))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        if x_lo < measurable {
            chart.draw_series(std::iter::once(Rectangle::new([(x_lo, y_lo), (measurable, 1.0)], SHADE.filled())))?;
        }
        for (i, (s, pts)) in series.iter().zip(&curves).enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            chart.draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(3)))?;
            for &(f, t) in s.points.iter().filter(|p| p.0 >= x_lo && p.0 <= 1.0 && p.1 >= y_lo) {
                if single {
                    // One run: the values fit beside the markers without colliding with another curve.
                    chart.draw_series(std::iter::once(
                        EmptyElement::at((f, t))
                            + Circle::new((0, 0), 6, c.filled())
                            + Text::new(format!("{:.2}%", 100.0 * t), (10, 4), font(16.0)),
                    ))?;
                } else {
                    chart.draw_series(std::iter::once(Circle::new((f, t), 6, c.filled())))?;
                }
            }
        }
        Ok(())
    })
}

/// DET: FRR against FAR, both log, with the EER points and the FAR = FRR diagonal.
pub fn det_chart(series: &[RocSeries<'_>], title: &str) -> Result<Vec<u8>> {
    ensure_font()?;
    series.iter().try_for_each(RocSeries::check)?;
    let measurable = series.iter().map(RocSeries::min_far).fold(1.0, f64::min);
    let x_lo = decade_floor(measurable);
    let curves: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            let floor = if s.n_genuine > 0 { 1.0 / s.n_genuine as f64 } else { 0.0 };
            s.positive_vertices()
                .into_iter()
                .map(|(f, t)| (f, 1.0 - t))
                .filter(|p| p.1 > 0.0 && p.1 >= floor * 0.999)
                .collect()
        })
        .collect();
    let min_frr = curves.iter().flatten().map(|p| p.1).fold(1.0, f64::min);
    let y_lo = decade_floor(min_frr);

    let mut entries = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        entries.push((Swatch::Line(c), if series.len() == 1 { "DET".to_string() } else { s.label.clone() }));
    }
    entries.push((Swatch::Cross(RGBColor(80, 80, 80)), "equal error rate (EER)".into()));
    entries.push((Swatch::Dashed(RGBColor(150, 150, 150)), "FAR = FRR".into()));
    if x_lo < measurable {
        entries.push((Swatch::Fill(SHADE), "FAR < 1 / (impostor pairs): not measurable".into()));
    }
    let legend = layout_legend(entries);

    render("DET", &legend, |area| {
        let mut chart = plot_builder(area, title).build_cartesian_2d(log_range(x_lo), log_range(y_lo))?;
        chart
            .configure_mesh()
            .x_labels(decades(x_lo, 1.0))
            .y_labels(decades(y_lo, 1.0))
            .x_label_formatter(&log_tick)
            .y_label_formatter(&log_tick)
            .x_desc("False accept rate (FAR)")
            .y_desc("False reject rate (FRR)")
            .label_style(font(17.0))
            .axis_desc_style(font(19.0))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        if x_lo < measurable {
            chart.draw_series(std::iter::once(Rectangle::new([(x_lo, y_lo), (measurable, 1.0)], SHADE.filled())))?;
        }
        let d0 = x_lo.max(y_lo);
        chart.draw_series(DashedLineSeries::new(
            vec![(d0, d0), (1.0, 1.0)],
            8,
            6,
            RGBColor(150, 150, 150).stroke_width(2),
        ))?;
        for (i, (s, pts)) in series.iter().zip(&curves).enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            chart.draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(3)))?;
            if let Some(e) = s.eer.filter(|e| *e >= x_lo.max(y_lo) && *e <= 1.0) {
                chart.draw_series(std::iter::once(Cross::new((e, e), 8, c.stroke_width(3))))?;
            }
        }
        Ok(())
    })
}

/// Genuine and impostor score histograms (each normalised to its own pair count) with the marked
/// thresholds as vertical dashed lines.
pub fn score_histogram_chart(curves: &Curves, title: &str, x_desc: &str) -> Result<Vec<u8>> {
    ensure_font()?;
    let h = &curves.score_histogram;
    let bins = h.genuine.len();
    if bins == 0 || h.impostor.len() != bins || !(h.lo.is_finite() && h.hi.is_finite() && h.hi > h.lo) {
        return Err(Error::Invalid(format!(
            "score histogram needs equal, non-empty genuine/impostor bins over a finite range; found {} and {} bins over [{}, {}]",
            bins,
            h.impostor.len(),
            h.lo,
            h.hi
        )));
    }
    let frac = |counts: &[u64]| -> Vec<f64> {
        let total = counts.iter().sum::<u64>().max(1) as f64;
        counts.iter().map(|&c| c as f64 / total).collect()
    };
    let (gen, imp) = (frac(&h.genuine), frac(&h.impostor));
    let y_hi = gen.iter().chain(&imp).fold(0.0f64, |a, &b| a.max(b)).max(1e-9) * 1.08;
    let width = (h.hi - h.lo) / bins as f64;
    let marks: Vec<_> = curves.marked_thresholds.iter().filter(|m| m.threshold.is_finite()).collect();

    let mut entries = vec![
        (Swatch::Fill(tint(GENUINE, 0.35)), format!("genuine pairs ({})", h.genuine.iter().sum::<u64>())),
        (Swatch::Fill(tint(IMPOSTOR, 0.35)), format!("impostor pairs ({})", h.impostor.iter().sum::<u64>())),
    ];
    for (i, m) in marks.iter().enumerate() {
        entries.push((
            Swatch::Dashed(THRESHOLD_COLORS[i % THRESHOLD_COLORS.len()]),
            format!("{} = {:.4}", m.label, m.threshold),
        ));
    }
    let legend = layout_legend(entries);

    render("score histogram", &legend, |area| {
        // Wider label area: densities need more digits than rates.
        let mut chart = plot_builder(area, title).y_label_area_size(96).build_cartesian_2d(h.lo..h.hi, 0.0..y_hi)?;
        chart
            .configure_mesh()
            .x_labels(11)
            .y_labels(8)
            .x_label_formatter(&|v| format!("{:.2}", if v.abs() < 5e-3 { 0.0 } else { *v }))
            .y_label_formatter(&|v| format!("{:.3}", v.max(0.0)))
            .x_desc(x_desc)
            .y_desc("Fraction of pairs per bin (per class)")
            .label_style(font(17.0))
            .axis_desc_style(font(19.0))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        for (fr, color) in [(&imp, IMPOSTOR), (&gen, GENUINE)] {
            let x = |i: usize| h.lo + width * i as f64;
            chart.draw_series(
                fr.iter()
                    .enumerate()
                    .map(|(i, &f)| Rectangle::new([(x(i), 0.0), (x(i + 1), f)], color.mix(0.35).filled())),
            )?;
            // Outline as a step line so overlapping bars stay readable.
            let mut step = Vec::with_capacity(2 * bins + 2);
            step.push((h.lo, 0.0));
            for (i, &f) in fr.iter().enumerate() {
                step.push((x(i), f));
                step.push((x(i + 1), f));
            }
            step.push((h.hi, 0.0));
            chart.draw_series(LineSeries::new(step, color.stroke_width(2)))?;
        }
        for (i, m) in marks.iter().enumerate() {
            if m.threshold < h.lo || m.threshold > h.hi {
                continue;
            }
            let c = THRESHOLD_COLORS[i % THRESHOLD_COLORS.len()];
            chart.draw_series(DashedLineSeries::new(
                vec![(m.threshold, 0.0), (m.threshold, y_hi)],
                8,
                5,
                c.stroke_width(2),
            ))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_use_superscripts() {
        assert_eq!(log_tick(&1e-4), "10⁻⁴");
        assert_eq!(log_tick(&1.0), "1");
        assert_eq!(log_tick(&0.1), "10⁻¹");
    }

    #[test]
    fn decade_floor_is_robust_to_rounding() {
        assert_eq!(decade_floor(1e-4), 1e-4);
        assert_eq!(decade_floor(1.0 / 3000.0), 1e-4);
        assert_eq!(decade_floor(1e-9), 1e-6);
    }

    #[test]
    fn legend_wraps_at_the_chart_width() {
        ensure_font().unwrap();
        let long = "x".repeat(60);
        let l = layout_legend((0..4).map(|_| (Swatch::Line(BLACK), long.clone())).collect());
        assert!(l.place.iter().any(|p| p.0 > 0), "long labels must wrap onto more rows");
        assert_eq!(l.height, (l.place.last().map_or(0, |p| p.0) + 1) * LEGEND_ROW + 2 * LEGEND_PAD);
    }
}

/// (bin label, (TAR, interval low, interval high)); None where the bin has no genuine pairs.
pub type AgeGapPoint = (String, Option<(f64, f64, f64)>);

/// One run's TAR per age-gap bin, with its bootstrap interval.
#[derive(Debug, Clone)]
pub struct AgeGapSeries {
    pub label: String,
    pub bins: Vec<AgeGapPoint>,
}

/// TAR at the fixed operating threshold against the age gap, one line per run, with intervals.
pub fn age_gap_chart(series: &[AgeGapSeries], title: &str) -> Result<Vec<u8>> {
    let axes = CategoryAxes {
        x_desc: "Age gap between the two images (years)",
        y_desc: "TAR at the fixed threshold",
        y_max: 1.0,
        note: "vertical bars: 95% bootstrap interval",
    };
    category_chart(series, title, &axes)
}

/// The axes of a chart over named categories.
pub struct CategoryAxes<'a> {
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    /// Top of the rate axis (the axis starts at 0 and is labelled in percent).
    pub y_max: f64,
    /// A legend line after the series.
    pub note: &'a str,
}

/// Decimals a percent label needs for ticks a tenth of `top` apart to differ.
fn percent_decimals(top: f64) -> usize {
    let step = 100.0 * top / 10.0;
    if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    }
}

/// A rate per category, one line per series (each point `(category label, (value, lo, hi))`),
/// with interval bars.
pub fn category_chart(series: &[AgeGapSeries], title: &str, axes: &CategoryAxes) -> Result<Vec<u8>> {
    ensure_font()?;
    let labels: Vec<String> = series.first().map(|s| s.bins.iter().map(|b| b.0.clone()).collect()).unwrap_or_default();
    if labels.is_empty() {
        return Err(Error::Invalid(format!("no categories to draw in '{title}'")));
    }
    let n = labels.len();
    let mut entries: Vec<(Swatch, String)> =
        series.iter().enumerate().map(|(i, s)| (Swatch::Line(PALETTE[i % PALETTE.len()]), s.label.clone())).collect();
    entries.push((Swatch::Line(RGBColor(120, 120, 120)), axes.note.into()));
    let legend = layout_legend(entries);
    let top = if axes.y_max > 0.0 && axes.y_max.is_finite() { axes.y_max } else { 1.0 };
    let decimals = percent_decimals(top);
    render(title, &legend, |area| {
        let mut chart = plot_builder(area, title).build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..top)?;
        chart
            .configure_mesh()
            .x_labels(n)
            .y_labels(11)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| format!("{:.decimals$}%", 100.0 * v))
            .x_desc(axes.x_desc)
            .y_desc(axes.y_desc)
            .label_style(font(17.0))
            .axis_desc_style(font(19.0))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        for (k, s) in series.iter().enumerate() {
            let c = PALETTE[k % PALETTE.len()];
            // Series are offset a little so their interval bars do not hide each other.
            let dx = (k as f64 - (series.len() as f64 - 1.0) / 2.0) * 0.06;
            let pts: Vec<(f64, f64)> =
                s.bins.iter().enumerate().filter_map(|(i, b)| b.1.map(|(t, _, _)| (i as f64 + dx, t))).collect();
            chart.draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(3)))?;
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 6, c.filled())))?;
            for (i, b) in s.bins.iter().enumerate() {
                if let Some((_, lo, hi)) = b.1.filter(|v| v.1.is_finite() && v.2.is_finite()) {
                    let x = i as f64 + dx;
                    chart.draw_series(std::iter::once(PathElement::new(vec![(x, lo), (x, hi)], c.stroke_width(2))))?;
                }
            }
        }
        Ok(())
    })
}

/// One group's impostor tail: (FMR, threshold) points.
#[derive(Debug, Clone)]
pub struct TailSeries {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Each group's impostor score tail (the score a fraction FMR of its impostors reach) on a log
/// FMR axis, with the global thresholds as crosses.
pub fn impostor_tail_chart(series: &[TailSeries], global: &[(f64, f64)], title: &str) -> Result<Vec<u8>> {
    ensure_font()?;
    let all: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().copied()).chain(global.iter().copied()).collect();
    if all.is_empty() {
        return Err(Error::Invalid(format!("no impostor tails to draw in '{title}'")));
    }
    let x_lo = decade_floor(all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min));
    let (y_lo, y_hi) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let pad = ((y_hi - y_lo) * 0.08).max(1e-3);
    let mut entries: Vec<(Swatch, String)> =
        series.iter().enumerate().map(|(i, s)| (Swatch::Line(PALETTE[i % PALETTE.len()]), s.label.clone())).collect();
    entries.push((Swatch::Cross(BLACK), "global threshold at each FMR target (all pairs)".into()));
    let legend = layout_legend(entries);
    render(title, &legend, |area| {
        let mut chart = plot_builder(area, title)
            .build_cartesian_2d((x_lo * (1.0 - 1e-9)..1.0 + 1e-9).log_scale(), (y_lo - pad)..(y_hi + pad))?;
        chart
            .configure_mesh()
            .x_labels(decades(x_lo, 1.0))
            .y_labels(11)
            .x_label_formatter(&log_tick)
            .y_label_formatter(&|v| format!("{v:.3}"))
            .x_desc("Fraction of the group's impostor pairs at or above the score (FMR)")
            .y_desc("Impostor score")
            .label_style(font(17.0))
            .axis_desc_style(font(19.0))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        for (k, s) in series.iter().enumerate() {
            let c = PALETTE[k % PALETTE.len()];
            chart.draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(3)))?;
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 5, c.filled())))?;
        }
        chart.draw_series(global.iter().map(|&p| Cross::new(p, 8, BLACK.stroke_width(2))))?;
        Ok(())
    })
}

/// One CMC curve: (1-based rank, identification rate) at the ranks where it steps.
#[derive(Debug, Clone)]
pub struct CmcSeries {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart over a log axis of counts from `x_lo` to `x_hi` and a 0–100% axis from `y_lo`.
type LogCountChart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::combinators::LogCoord<f64>, plotters::coord::types::RangedCoordf64>,
>;

fn log_count_chart<'a, 'b>(
    area: &'a Area<'b>,
    title: &str,
    (x_lo, x_hi): (f64, f64),
    y_lo: f64,
    (x_desc, y_desc): (&str, &str),
) -> std::result::Result<LogCountChart<'a, 'b>, Box<dyn std::error::Error>> {
    let mut chart = plot_builder(area, title)
        .build_cartesian_2d((x_lo * (1.0 - 1e-9)..x_hi * (1.0 + 1e-9)).log_scale(), y_lo..1.0)?;
    chart
        .configure_mesh()
        .x_labels(decades(x_lo, x_hi))
        .y_labels(11)
        .x_label_formatter(&log_tick)
        .y_label_formatter(&|v| format!("{:.0}%", 100.0 * v))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(font(17.0))
        .axis_desc_style(font(19.0))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;
    Ok(chart)
}

/// One legend line per series, in palette order.
fn series_legend(series: &[CmcSeries]) -> Legend {
    layout_legend(
        series.iter().enumerate().map(|(i, s)| (Swatch::Line(PALETTE[i % PALETTE.len()]), s.label.clone())).collect(),
    )
}

/// Identification rate against rank (log axis from rank 1 to the largest rank drawn).
pub fn cmc_chart(series: &[CmcSeries], title: &str) -> Result<Vec<u8>> {
    ensure_font()?;
    let max_rank = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(10.0, f64::max);
    let x_hi = 10f64.powf(max_rank.log10().ceil());
    let y_lo = series.iter().flat_map(|s| s.points.first().map(|p| p.1)).fold(1.0, f64::min);
    let y_lo = ((y_lo - 0.02) * 10.0).floor().clamp(0.0, 9.0) / 10.0;
    let legend = series_legend(series);
    render("CMC", &legend, |area| {
        let mut chart = log_count_chart(area, title, (1.0, x_hi), y_lo, ("Rank", "Identification rate"))?;
        for (i, s) in series.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            // A step function: the rate holds until the next rank where it rises.
            let mut steps = Vec::with_capacity(2 * s.points.len() + 1);
            for (k, &(r, v)) in s.points.iter().enumerate() {
                if k > 0 {
                    steps.push((r, s.points[k - 1].1));
                }
                steps.push((r, v.max(y_lo)));
            }
            if let Some(&(_, v)) = s.points.last() {
                steps.push((x_hi, v));
            }
            chart.draw_series(LineSeries::new(steps.into_iter().filter(|p| p.1 >= y_lo), c.stroke_width(3)))?;
        }
        Ok(())
    })
}

/// Rank-1 against the number of distractors (log axis), one line per run.
pub fn rank1_vs_distractors_chart(series: &[CmcSeries], title: &str) -> Result<Vec<u8>> {
    ensure_font()?;
    let x_hi = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(10.0, f64::max);
    let x_hi = 10f64.powf(x_hi.log10().ceil());
    let legend = series_legend(series);
    render("rank-1", &legend, |area| {
        let mut chart = log_count_chart(area, title, (10.0, x_hi), 0.0, ("Distractors", "Rank-1 identification rate"))?;
        for (i, s) in series.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            chart.draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(3)))?;
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 6, c.filled())))?;
        }
        Ok(())
    })
}

/// IJB 1:N: TPIR (strict rule) against FPIR on a log axis, one line per gallery, with the
/// operating points (achieved FPIR, TPIR) marked.
pub fn open_set_chart(
    curves: &[crate::protocol::curves::OpenSetCurve],
    points: &[Vec<(f64, f64)>],
    title: &str,
) -> Result<Vec<u8>> {
    ensure_font()?;
    if let Some(c) = curves.iter().find(|c| c.fpir.len() != c.tpir.len()) {
        return Err(Error::Invalid(format!(
            "open-set curve of {}: {} FPIR values but {} TPIR values",
            c.gallery,
            c.fpir.len(),
            c.tpir.len()
        )));
    }
    let positive: Vec<Vec<(f64, f64)>> = curves
        .iter()
        .map(|c| {
            c.fpir
                .iter()
                .zip(&c.tpir)
                .filter(|(f, t)| **f > 0.0 && f.is_finite() && t.is_finite())
                .map(|(&f, &t)| (f, t))
                .collect()
        })
        .collect();
    if positive.iter().all(Vec::is_empty) {
        return Err(Error::Invalid("no open-set curve points with FPIR > 0".into()));
    }
    let min_fpir = positive.iter().flatten().map(|p| p.0).fold(1.0, f64::min);
    let x_lo = decade_floor(min_fpir);
    let min_tpir = positive.iter().flatten().map(|p| p.1).fold(1.0, f64::min);
    let y_lo = ((min_tpir - 0.02) * 10.0).floor().clamp(0.0, 9.0) / 10.0;
    let mut entries: Vec<(Swatch, String)> = curves
        .iter()
        .enumerate()
        .map(|(i, c)| (Swatch::Line(PALETTE[i % PALETTE.len()]), format!("gallery {}", c.gallery)))
        .collect();
    entries.push((Swatch::Marker(RGBColor(80, 80, 80)), "TPIR@FPIR operating points (strict rule)".into()));
    let legend = layout_legend(entries);
    render("TPIR/FPIR", &legend, |area| {
        let axes = ("False positive identification rate (FPIR)", "True positive identification rate (TPIR)");
        let mut chart = log_count_chart(area, title, (x_lo, 1.0), y_lo, axes)?;
        for (i, pts) in positive.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            chart.draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(3)))?;
            let marks = points.get(i).map(Vec::as_slice).unwrap_or_default();
            chart.draw_series(
                marks
                    .iter()
                    .filter(|p| p.0 >= x_lo && p.0 <= 1.0 && p.1 >= y_lo)
                    .map(|&p| Circle::new(p, 6, c.filled())),
            )?;
        }
        Ok(())
    })
}
