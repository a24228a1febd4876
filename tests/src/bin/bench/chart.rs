//! A small SVG line chart of LINE requests per second, with the rate limit drawn across it.

use std::fmt::Write;

/// `points`: (seconds since the first request, requests in that second).
pub fn requests_per_second_svg(title: &str, points: &[(u64, u64)], limit: u64) -> String {
    let (w, h) = (720.0, 320.0);
    let (left, right, top, bottom) = (60.0, 20.0, 40.0, 40.0);
    let max_x = points.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let max_y = points
        .iter()
        .map(|p| p.1)
        .max()
        .unwrap_or(0)
        .max(limit)
        .max(1) as f64
        * 1.15;
    let x = |v: f64| left + v / max_x * (w - left - right);
    let y = |v: f64| h - bottom - v / max_y * (h - top - bottom);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="22" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    // Axes and grid.
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
        h - bottom,
        w - right,
        h - bottom
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#333"/>"##,
        h - bottom
    );
    for i in 0..=4 {
        let v = max_y / 1.15 * f64::from(i) / 4.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{:.0}</text>"##,
            w - right,
            left - 6.0,
            y(v) + 4.0,
            v,
            yy = y(v)
        );
    }
    for i in 0..=5 {
        let v = max_x * f64::from(i) / 5.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{:.0}s</text>"#,
            x(v),
            h - bottom + 16.0,
            v
        );
    }
    // The limit.
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{ly:.1}" x2="{}" y2="{ly:.1}" stroke="#c00" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" fill="#c00" text-anchor="end">limit {limit}/s</text>"##,
        w - right,
        w - right,
        y(limit as f64) - 6.0,
        ly = y(limit as f64)
    );
    // The series (seconds without requests are zero).
    let mut path = String::new();
    let mut by_sec = std::collections::BTreeMap::new();
    for &(s, n) in points {
        by_sec.insert(s, n);
    }
    for s in 0..=max_x as u64 {
        let n = by_sec.get(&s).copied().unwrap_or(0);
        let _ = write!(
            path,
            "{}{:.1},{:.1} ",
            if s == 0 { "M" } else { "L" },
            x(s as f64),
            y(n as f64)
        );
    }
    let _ = writeln!(
        svg,
        r##"<path d="{}" fill="none" stroke="#06c" stroke-width="2"/>"##,
        path.trim_end()
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds since the first request (requests accepted per second)</text>"#,
        (left + w - right) / 2.0,
        h - 6.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
