//! SVG charts for `gossip sim --plot FILE.svg` (plotters, SVG backend: text is left to the
//! viewer, so no font files are needed).

use std::path::Path;

use plotters::prelude::*;

/// One named line of (x, y) points.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// What to draw.
#[derive(Debug, Clone)]
pub enum Chart {
    /// Lines over a shared x axis.
    Lines { title: String, x_label: String, y_label: String, lines: Vec<Line> },
    /// Labelled bars.
    Bars { title: String, y_label: String, bars: Vec<(String, f64)> },
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Checks, before an experiment runs, that a chart can be written to `path`: its directory
/// exists and it is not itself a directory. (The file is only created once the chart is
/// drawn, after the run: a typo in the path must not cost the run.)
pub fn check_target(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!("cannot write {}: no directory {}", path.display(), dir.display()));
    }
    if path.is_dir() {
        return Err(format!("cannot write {}: it is a directory", path.display()));
    }
    Ok(())
}

/// Writes `chart` to `path` as SVG.
pub fn write(path: &Path, chart: &Chart) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    match chart {
        Chart::Lines { title, x_label, y_label, lines } => {
            let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
            let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
            let (x0, x1) = bounds(xs);
            let (_, y1) = bounds(ys);
            let mut c = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 22))
                .margin(16)
                .x_label_area_size(44)
                .y_label_area_size(64)
                .build_cartesian_2d(x0..x1, 0.0..y1 * 1.05)
                .map_err(|e| e.to_string())?;
            c.configure_mesh().x_desc(x_label.as_str()).y_desc(y_label.as_str()).draw().map_err(|e| e.to_string())?;
            for (i, line) in lines.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                c.draw_series(LineSeries::new(line.points.iter().copied(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(line.name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
            c.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        Chart::Bars { title, y_label, bars } => {
            let (_, y1) = bounds(bars.iter().map(|b| b.1));
            let n = bars.len().max(1) as u32;
            let mut c = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 22))
                .margin(16)
                .x_label_area_size(44)
                .y_label_area_size(64)
                .build_cartesian_2d((0u32..n.saturating_sub(1)).into_segmented(), 0.0..y1 * 1.1)
                .map_err(|e| e.to_string())?;
            let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
            c.configure_mesh()
                .y_desc(y_label.as_str())
                .x_labels(bars.len())
                .x_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
                    _ => String::new(),
                })
                .draw()
                .map_err(|e| e.to_string())?;
            c.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let color = COLORS[i % COLORS.len()];
                let i = i as u32;
                let mut bar =
                    Rectangle::new([(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), *v)], color.filled());
                bar.set_margin(0, 0, 60, 60);
                bar
            }))
            .map_err(|e| e.to_string())?;
        }
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    (lo.min(0.0), hi)
}
