//! Charts as SVG or PNG (chosen by the file extension), drawn with plotters and the
//! embedded DejaVu Sans font, so they look the same on a bare machine.

use std::path::Path;

use anyhow::{Context, Result, bail};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// plotters' errors carry the drawing backend's error type, which need not be `Send +
/// Sync`: they become the CLI's error by their message, in this one place.
trait Drawn<T> {
    fn drawn(self) -> Result<T>;
}

impl<T, E: std::fmt::Display> Drawn<T> for std::result::Result<T, E> {
    fn drawn(self) -> Result<T> {
        self.map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))
    }
}

static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Categorical palette (Tableau 10), colour-blind friendly enough and distinct in print.
const PALETTE: [RGBColor; 10] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(225, 87, 89),
    RGBColor(118, 183, 178),
    RGBColor(89, 161, 79),
    RGBColor(237, 201, 72),
    RGBColor(176, 122, 161),
    RGBColor(255, 157, 167),
    RGBColor(156, 117, 95),
    RGBColor(186, 176, 172),
];

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to parse; a failure would only lose labels.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// A scatter plot of a 2-D map.
pub struct Scatter<'a> {
    /// Title above the chart.
    pub title: &'a str,
    /// Horizontal axis title (with its unit).
    pub x_label: String,
    /// Vertical axis title (with its unit).
    pub y_label: String,
    /// (x, y) pairs in data units, in drawing order.
    pub points: &'a [(f64, f64)],
    /// Group of each point (`None`: unassigned / noise, drawn grey).
    pub groups: &'a [Option<usize>],
    /// Group names (legend).
    pub names: &'a [String],
    /// Labelled markers at the group centres.
    pub centres: &'a [(f64, f64)],
}

fn bounds(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in v.filter(|x| x.is_finite()) {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if !lo.is_finite() {
        return (-1.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

fn with_backend(
    path: &Path,
    size: (u32, u32),
    draw: impl Fn(DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
    draw_png: impl Fn(DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw(root)
        }
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw_png(root)
        }
        _ => bail!("{}: the chart file must end in .svg or .png", path.display()),
    }
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws the series legend at `position` and writes the file.
fn legend_and_present<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    root: &DrawingArea<DB, Shift>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .label_font((FAMILY, 12))
        .position(position)
        .draw()
        .drawn()?;
    root.present().drawn()?;
    Ok(())
}

/// White background, title, axes fitted to `points` with a 5% margin.
fn frame<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    points: &[(f64, f64)],
) -> Result<Chart<'a, DB>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).drawn()?;
    let (x0, x1) = bounds(points.iter().map(|p| p.0));
    let (y0, y1) = bounds(points.iter().map(|p| p.1));
    ChartBuilder::on(root)
        .caption(title, (FAMILY, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .drawn()
}

/// How the x axis is labelled.
enum XAxis {
    /// Plotters' default labels.
    Plain,
    /// Whole numbers (iterations, epochs), optionally this many labels.
    Whole(Option<usize>),
}

/// Axis titles, fonts and a light grid, the same on every chart.
fn axes<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, x: &str, y: &str, x_axis: XAxis) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let whole = |v: &f64| format!("{v:.0}");
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x)
        .y_desc(y)
        .axis_desc_style((FAMILY, 15))
        .label_style((FAMILY, 12))
        .light_line_style(RGBColor(235, 235, 235));
    if let XAxis::Whole(n) = x_axis {
        mesh.x_label_formatter(&whole);
        if let Some(n) = n {
            mesh.x_labels(n);
        }
    }
    mesh.draw().drawn()
}

/// The q-quantile (0..1) of finite values (linear interpolation); `None` without any.
fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return None;
    }
    let at = (n - 1) as f64 * q;
    let i = at.floor() as usize;
    Some(if i + 1 < n { values[i] + (values[i + 1] - values[i]) * (at - i as f64) } else { values[i] })
}

/// A frame that outliers cannot squash: the 1st to 99th percentile, widened by 8%.
fn robust_bounds(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut values: Vec<f64> = v.filter(|x| x.is_finite()).collect();
    let (Some(lo), Some(hi)) = (quantile(&mut values, 0.01), quantile(&mut values, 0.99)) else { return (-1.0, 1.0) };
    let (lo, hi) = if hi > lo { (lo, hi) } else { bounds(values.iter().copied()) };
    let pad = ((hi - lo) * 0.08).max(1e-9);
    (lo - pad, hi + pad)
}

/// Places labels (centre x, y, width, height in pixels) so that no two overlap: each in
/// turn takes the first free spot on rings around its anchor, inside `width` × `height`
/// (the algorithm of `web/charts.js`'s `placeLabels`). Returns the centres.
pub fn place_labels(labels: &[(f64, f64, f64, f64)], width: f64, height: f64) -> Vec<(f64, f64)> {
    let mut placed: Vec<(f64, f64, f64, f64)> = Vec::new();
    let hits = |a: &(f64, f64, f64, f64), b: &(f64, f64, f64, f64)| {
        (a.0 - b.0).abs() * 2.0 < a.2 + b.2 && (a.1 - b.1).abs() * 2.0 < a.3 + b.3
    };
    let mut out = Vec::with_capacity(labels.len());
    for &(x, y, w, h) in labels {
        let mut best = None;
        'rings: for ring in 0..12 {
            let r = f64::from(ring) * h * 0.9;
            let tries = if ring == 0 { 1 } else { 12 };
            for k in 0..tries {
                let a = 2.0 * std::f64::consts::PI * f64::from(k) / f64::from(tries);
                let cx = (x + r * a.cos() * 1.6).clamp(w / 2.0, (width - w / 2.0).max(w / 2.0));
                let cy = (y + r * a.sin()).clamp(h / 2.0, (height - h / 2.0).max(h / 2.0));
                let c = (cx, cy, w, h);
                if !placed.iter().any(|p| hits(&c, p)) {
                    best = Some(c);
                    break 'rings;
                }
            }
        }
        let c = best.unwrap_or((x, y, w, h));
        placed.push(c);
        out.push((c.0, c.1));
    }
    out
}

fn scatter_on<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, s: &Scatter<'_>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    // Framed on robust quantiles; points beyond are pinned to the edge as open circles.
    let fx = robust_bounds(s.points.iter().map(|p| p.0));
    let fy = robust_bounds(s.points.iter().map(|p| p.1));
    let frame_corners = [(fx.0, fy.0), (fx.1, fy.1)];
    let mut chart = frame(&root, s.title, &frame_corners)?;
    axes(&mut chart, &s.x_label, &s.y_label, XAxis::Plain)?;
    let pin = |p: (f64, f64)| (p.0.clamp(fx.0, fx.1), p.1.clamp(fy.0, fy.1));
    let inside = |p: &(f64, f64)| pin(*p) == *p;
    let pinned = s.points.iter().filter(|p| !inside(p)).count();
    // Noise first, then the groups from the largest to the smallest, so small segments are
    // drawn on top, and larger.
    let noise: Vec<(f64, f64)> = s.points.iter().zip(s.groups).filter(|(_, g)| g.is_none()).map(|(p, _)| *p).collect();
    if !noise.is_empty() {
        chart
            .draw_series(noise.iter().map(|p| Circle::new(pin(*p), 2, RGBColor(200, 200, 200).filled())))
            .drawn()?
            .label(format!("noise ({})", noise.len()))
            .legend(|(x, y)| Circle::new((x + 6, y), 4, RGBColor(200, 200, 200).filled()));
    }
    let mut order: Vec<(usize, Vec<(f64, f64)>)> = (0..s.names.len())
        .map(|g| (g, s.points.iter().zip(s.groups).filter(|(_, x)| **x == Some(g)).map(|(p, _)| *p).collect()))
        .collect();
    order.sort_by_key(|(g, pts)| (std::cmp::Reverse(pts.len()), *g));
    let total = s.points.len().max(1) as f64;
    for (g, pts) in &order {
        let colour = PALETTE[g % PALETTE.len()];
        let share = pts.len() as f64 / total;
        let r = if share < 0.02 {
            4
        } else if share < 0.1 {
            3
        } else {
            2
        };
        let size = pts.len();
        chart
            .draw_series(pts.iter().filter(|p| inside(p)).map(|p| Circle::new(*p, r, colour.mix(0.6).filled())))
            .drawn()?
            .label(format!("{} ({size})", s.names[*g]))
            .legend(move |(x, y)| Circle::new((x + 6, y), 4, colour.filled()));
        chart
            .draw_series(pts.iter().filter(|p| !inside(p)).map(|p| Circle::new(pin(*p), r + 1, colour.stroke_width(1))))
            .drawn()?;
    }
    if pinned > 0 {
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .drawn()?
            .label(format!("({pinned} beyond the 1st-99th percentile, pinned to the edge)"))
            .legend(|(x, y)| Circle::new((x + 6, y), 4, RGBColor(90, 90, 90).stroke_width(1)));
    }
    // Names at the group centres, placed in pixels so that no two overlap.
    let (w, h) = root.dim_in_pixel();
    let font = 13.0;
    let named: Vec<(usize, String, (i32, i32))> = s
        .centres
        .iter()
        .zip(s.names)
        .enumerate()
        .map(|(g, (c, name))| (g, name.chars().take(28).collect::<String>(), chart.backend_coord(&pin(*c))))
        .collect();
    let boxes: Vec<(f64, f64, f64, f64)> = named
        .iter()
        .map(|(_, name, (x, y))| (f64::from(*x), f64::from(*y), 7.4 * name.chars().count() as f64 + 8.0, font + 6.0))
        .collect();
    for ((g, name, anchor), (cx, cy)) in named.iter().zip(place_labels(&boxes, f64::from(w), f64::from(h))) {
        let colour = PALETTE[g % PALETTE.len()];
        root.draw(&Cross::new(*anchor, 7, colour.stroke_width(3))).drawn()?;
        let style = (FAMILY, font).into_font().color(&BLACK).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        ));
        root.draw(&Text::new(name.clone(), (cx as i32, cy as i32), style)).drawn()?;
    }
    legend_and_present(&mut chart, &root, SeriesLabelPosition::UpperRight)
}

/// Writes a scatter plot to `path` (.svg or .png).
pub fn scatter(path: &Path, s: &Scatter<'_>) -> Result<()> {
    with_backend(path, (1000, 720), |r| scatter_on(r, s), |r| scatter_on(r, s))
        .with_context(|| format!("drawing {}", path.display()))
}

/// A line chart of one series with marked points.
pub struct Line<'a> {
    /// Title above the chart.
    pub title: &'a str,
    /// Horizontal axis title (with its unit).
    pub x_label: &'a str,
    /// Vertical axis title (with its unit).
    pub y_label: &'a str,
    /// Points in x order.
    pub points: &'a [(f64, f64)],
    /// A point to highlight (the chosen one), with its label.
    pub highlight: Option<((f64, f64), String)>,
}

fn line_on<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, l: &Line<'_>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut chart = frame(&root, l.title, l.points)?;
    axes(&mut chart, l.x_label, l.y_label, XAxis::Whole(Some(l.points.len().max(2))))?;
    let c = PALETTE[0];
    chart.draw_series(LineSeries::new(l.points.iter().copied(), c.stroke_width(2))).drawn()?;
    chart.draw_series(l.points.iter().map(|p| Circle::new(*p, 4, c.filled()))).drawn()?;
    if let Some((p, text)) = &l.highlight {
        chart.draw_series(std::iter::once(Circle::new(*p, 8, PALETTE[2].stroke_width(3)))).drawn()?;
        chart
            .draw_series(std::iter::once(Text::new(text.clone(), *p, (FAMILY, 14).into_font().color(&BLACK))))
            .drawn()?;
    }
    root.present().drawn()?;
    Ok(())
}

/// Writes a line chart to `path` (.svg or .png).
pub fn line(path: &Path, l: &Line<'_>) -> Result<()> {
    with_backend(path, (800, 500), |r| line_on(r, l), |r| line_on(r, l))
        .with_context(|| format!("drawing {}", path.display()))
}

/// Several named series on one chart, with a legend.
pub struct Lines<'a> {
    /// Title above the chart.
    pub title: &'a str,
    /// Horizontal axis title (with its unit).
    pub x_label: &'a str,
    /// Vertical axis title (with its unit).
    pub y_label: &'a str,
    /// (name, points in x order).
    pub series: &'a [(String, Vec<(f64, f64)>)],
}

fn lines_on<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, l: &Lines<'_>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let all: Vec<(f64, f64)> = l.series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let mut chart = frame(&root, l.title, &all)?;
    axes(&mut chart, l.x_label, l.y_label, XAxis::Whole(None))?;
    for (n, (name, points)) in l.series.iter().enumerate() {
        let c = PALETTE[n % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .drawn()?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(3)));
    }
    legend_and_present(&mut chart, &root, SeriesLabelPosition::LowerRight)
}

/// Writes a multi-series line chart to `path` (.svg or .png).
pub fn lines(path: &Path, l: &Lines<'_>) -> Result<()> {
    with_backend(path, (900, 560), |r| lines_on(r, l), |r| lines_on(r, l))
        .with_context(|| format!("drawing {}", path.display()))
}

fn bars_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    bars: &[(String, f64)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).drawn()?;
    let top = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-9) * 1.15;
    let n = bars.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)
        .drawn()?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc(y_label)
        .axis_desc_style((FAMILY, 15))
        .label_style((FAMILY, 12))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .drawn()?;
    for (i, (label, v)) in bars.iter().enumerate() {
        let x = i as f64;
        let colour = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(std::iter::once(Rectangle::new([(x + 0.15, 0.0), (x + 0.85, *v)], colour.filled())))
            .drawn()?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{v:.4}"),
                (x + 0.3, *v + top * 0.02),
                (FAMILY, 13).into_font(),
            )))
            .drawn()?;
        // About 7 px per character of 12 px text; the bar is 70% of its slot.
        let (w, _) = root.dim_in_pixel();
        let fit = ((f64::from(w) - 100.0) / n as f64 * 0.7 / 7.0).max(4.0) as usize;
        let short: String = if label.chars().count() > fit {
            label.chars().take(fit.saturating_sub(1)).collect::<String>() + "…"
        } else {
            label.clone()
        };
        chart
            .draw_series(std::iter::once(Text::new(
                short,
                (x + 0.17, top * 0.005 + v * 0.5),
                (FAMILY, 12).into_font().color(&WHITE),
            )))
            .drawn()?;
    }
    root.present().drawn()?;
    Ok(())
}

/// Writes a bar chart (one labelled bar per entry) to `path` (.svg or .png).
pub fn bars(path: &Path, title: &str, y_label: &str, bars: &[(String, f64)]) -> Result<()> {
    let width = (200 + 160 * bars.len() as u32).clamp(600, 1600);
    with_backend(path, (width, 500), |r| bars_on(r, title, y_label, bars), |r| bars_on(r, title, y_label, bars))
        .with_context(|| format!("drawing {}", path.display()))
}

/// A named series of (x, value, low, high) points in x order.
pub type BandSeries = (String, Vec<(f64, f64, f64, f64)>);

/// Series with a shaded interval around each, and a dashed zero line (lift over time).
pub struct Bands<'a> {
    /// Title above the chart.
    pub title: &'a str,
    /// Horizontal axis title (with its unit).
    pub x_label: &'a str,
    /// Vertical axis title (with its unit).
    pub y_label: &'a str,
    /// (name, points (x, value, low, high) in x order).
    pub series: &'a [BandSeries],
}

fn bands_on<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, b: &Bands<'_>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut all: Vec<(f64, f64)> =
        b.series.iter().flat_map(|(_, p)| p.iter().flat_map(|&(x, _, lo, hi)| [(x, lo), (x, hi)])).collect();
    if let Some(&(x, _)) = all.first() {
        all.push((x, 0.0));
    }
    let mut chart = frame(&root, b.title, &all)?;
    axes(&mut chart, b.x_label, b.y_label, XAxis::Whole(None))?;
    let xs: Vec<f64> = all.iter().map(|p| p.0).collect();
    let (x0, x1) =
        (xs.iter().copied().fold(f64::INFINITY, f64::min), xs.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    chart.draw_series(DashedLineSeries::new([(x0, 0.0), (x1, 0.0)], 6, 4, BLACK.stroke_width(1))).drawn()?;
    for (n, (name, points)) in b.series.iter().enumerate() {
        let c = PALETTE[n % PALETTE.len()];
        let mut outline: Vec<(f64, f64)> = points.iter().map(|&(x, _, lo, _)| (x, lo)).collect();
        outline.extend(points.iter().rev().map(|&(x, _, _, hi)| (x, hi)));
        chart.draw_series(std::iter::once(Polygon::new(outline, c.mix(0.18).filled()))).drawn()?;
        chart
            .draw_series(LineSeries::new(points.iter().map(|&(x, v, _, _)| (x, v)), c.stroke_width(2)))
            .drawn()?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(3)));
    }
    legend_and_present(&mut chart, &root, SeriesLabelPosition::UpperRight)
}

/// Writes a chart of series with intervals to `path` (.svg or .png).
pub fn bands(path: &Path, b: &Bands<'_>) -> Result<()> {
    with_backend(path, (900, 560), |r| bands_on(r, b), |r| bands_on(r, b))
        .with_context(|| format!("drawing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_never_overlap_and_outliers_do_not_set_the_frame() {
        let boxes = vec![(100.0, 100.0, 80.0, 20.0); 6];
        let at = place_labels(&boxes, 1000.0, 720.0);
        for i in 0..at.len() {
            for j in i + 1..at.len() {
                let overlap = (at[i].0 - at[j].0).abs() < 80.0 && (at[i].1 - at[j].1).abs() < 20.0;
                assert!(!overlap, "labels {i} and {j} overlap: {at:?}");
            }
        }
        // 999 points in [0, 1] and one at -18: the frame is about the cloud, not the outlier.
        let v = (0..999).map(|i| f64::from(i) / 998.0).chain(std::iter::once(-18.0));
        let (lo, hi) = robust_bounds(v);
        assert!(lo > -0.2 && hi < 1.2, "{lo} {hi}");
    }

    #[test]
    fn draws_svg_and_png_with_labels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pts = [(0.0, 0.0), (1.0, 1.0), (5.0, 5.0), (6.0, 5.5)];
        let groups = [Some(0), Some(0), Some(1), None];
        let names = vec!["high AOV".to_owned(), "recent".to_owned()];
        let s = Scatter {
            title: "Segments",
            x_label: "PC1 (60% of variance)".into(),
            y_label: "PC2 (30%)".into(),
            points: &pts,
            groups: &groups,
            names: &names,
            centres: &[(0.5, 0.5), (5.0, 5.0)],
        };
        let svg = dir.path().join("m.svg");
        scatter(&svg, &s).expect("svg");
        let text = fs_err::read_to_string(&svg).expect("read");
        for want in ["PC1 (60% of variance)", "high AOV (2)", "recent (1)", "noise (1)", "Segments"] {
            assert!(text.contains(want), "{want} missing");
        }
        let png = dir.path().join("m.png");
        scatter(&png, &s).expect("png");
        let bytes = fs_err::read(&png).expect("read");
        assert_eq!(&bytes[1..4], b"PNG");
        let l = Line {
            title: "Silhouette by k",
            x_label: "k",
            y_label: "silhouette",
            points: &[(2.0, 0.3), (3.0, 0.5), (4.0, 0.4)],
            highlight: Some(((3.0, 0.5), "k = 3".into())),
        };
        line(&dir.path().join("k.svg"), &l).expect("line");
        assert!(scatter(&dir.path().join("m.gif"), &s).is_err());
    }
}
