//! Small line charts as inline SVG (no script, no external asset): one value per window,
//! oldest first, with gaps where a window had nothing to show.

use std::fmt::Write as _;

/// Drawing area, in SVG user units (the chart scales to its box).
const WIDTH: f64 = 360.0;
const HEIGHT: f64 = 90.0;
/// Space above the line for the top label and below it for the time axis.
const TOP: f64 = 14.0;
const BOTTOM: f64 = 76.0;
/// Space left and right, so that the round cap of a point at an edge shows whole.
const SIDE: f64 = 3.0;

/// One chart: a line over `values`, scaled from 0 to `max` (or to the largest value).
pub struct Chart<'a> {
    /// The `id` of the `<figure>` (tests and the browser check look for it).
    pub id: &'a str,
    /// The caption's title, such as "Requests per second".
    pub title: &'a str,
    /// What the x axis spans, such as "1 hour".
    pub span: &'a str,
    /// One value per window, oldest first; `None` draws a gap.
    pub values: &'a [Option<f64>],
    /// A fixed top of the scale (a ratio's 1.0), else the largest value.
    pub max: Option<f64>,
    /// How a value is written in labels.
    pub format: fn(f64) -> String,
}

impl Chart<'_> {
    /// The chart as a `<figure>` holding an `<svg>` and a caption with the latest and the
    /// highest value.
    pub fn render(&self) -> String {
        let shown: Vec<f64> = self.values.iter().flatten().copied().collect();
        let peak = shown.iter().copied().fold(0.0_f64, f64::max);
        let top = self.max.unwrap_or(peak).max(f64::MIN_POSITIVE);
        let n = self.values.len().max(2);
        let x = |i: usize| SIDE + i as f64 * (WIDTH - 2.0 * SIDE) / (n - 1) as f64;
        let y = |v: f64| BOTTOM - (v / top).clamp(0.0, 1.0) * (BOTTOM - TOP);
        let mut d = String::new();
        for (i, v) in self.values.iter().enumerate() {
            let Some(v) = v else { continue };
            let (px, py) = (x(i), y(*v));
            let after_gap = i == 0 || self.values[i - 1].is_none();
            if !after_gap {
                let _ = write!(d, "L{px:.1} {py:.1}");
            } else if self.values.get(i + 1).is_some_and(Option::is_some) {
                let _ = write!(d, "M{px:.1} {py:.1}");
            } else {
                // A lone point still shows: a round cap on a tiny segment.
                let _ = write!(d, "M{px:.1} {py:.1}h0.1");
            }
        }
        let caption = match (self.values.iter().rev().flatten().next(), shown.is_empty()) {
            (Some(last), false) => format!(
                "now {}, highest {}",
                (self.format)(*last),
                (self.format)(peak)
            ),
            _ => "no data yet".to_string(),
        };
        let mut o = String::with_capacity(1024 + d.len());
        let _ = write!(
            o,
            concat!(
                "<figure class=\"chart\" id=\"{id}\"><figcaption><b>{title}</b> <span>{caption}</span></figcaption>\n",
                "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{title} over the last {span}: {caption}\">",
                "<line x1=\"0\" y1=\"{bottom}\" x2=\"{w}\" y2=\"{bottom}\" class=\"axis\"/>",
                "<line x1=\"0\" y1=\"{top_y}\" x2=\"{w}\" y2=\"{top_y}\" class=\"grid\"/>",
                "<text x=\"2\" y=\"10\">{top_label}</text>",
                "<text x=\"2\" y=\"{h_label}\">{span} ago</text>",
                "<text x=\"{w}\" y=\"{h_label}\" text-anchor=\"end\">now</text>",
                "<path class=\"line\" d=\"{d}\"/></svg></figure>\n"
            ),
            id = self.id,
            title = self.title,
            span = self.span,
            caption = caption,
            w = WIDTH,
            h = HEIGHT,
            bottom = BOTTOM,
            top_y = TOP,
            top_label = (self.format)(top),
            h_label = HEIGHT - 2.0,
            d = d,
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(v: f64) -> String {
        format!("{v:.1}")
    }

    #[test]
    fn draws_segments_with_gaps_and_a_caption() {
        let values = [None, Some(1.0), Some(2.0), None, Some(4.0)];
        let svg = Chart {
            id: "chart-x",
            title: "X",
            span: "1 hour",
            values: &values,
            max: None,
            format: fmt,
        }
        .render();
        assert!(svg.contains("id=\"chart-x\""));
        assert!(svg.contains("now 4.0, highest 4.0"), "{svg}");
        // Two runs: points 1-2, then the lone point 4 (at the right edge, on top).
        assert!(
            svg.contains("d=\"M91.5 60.5L180.0 45.0M357.0 14.0h0.1\""),
            "{svg}"
        );
        assert!(!svg.contains("http"), "no external reference");
    }

    #[test]
    fn no_data_draws_no_line() {
        let svg = Chart {
            id: "chart-y",
            title: "Y",
            span: "1 hour",
            values: &[None; 4],
            max: Some(1.0),
            format: fmt,
        }
        .render();
        assert!(svg.contains("no data yet"));
        assert!(svg.contains("d=\"\""));
        assert!(svg.contains(">1.0</text>"));
    }
}
