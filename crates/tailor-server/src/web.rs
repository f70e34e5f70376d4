//! Web assets embedded in the binary (a fresh machine needs nothing else to serve them).

use axum::http::header;
use axum::response::IntoResponse;

/// The widget's source (`web/widget.js`).
pub const WIDGET_JS: &str = include_str!("../../../web/widget.js");

/// The demo storefront (`web/demo.html`): one page, hash routes, the widget in its slots.
pub const DEMO_HTML: &str = include_str!("../../../web/demo.html");

/// `GET /demo`.
pub(crate) async fn demo() -> impl IntoResponse {
    axum::response::Html(DEMO_HTML)
}

/// The dashboard (`web/dashboard.html`): models, experiments, segments and serving health,
/// drawn from the admin API with inline SVG charts.
pub const DASHBOARD_HTML: &str = include_str!("../../../web/dashboard.html");

/// `GET /dashboard`.
pub(crate) async fn dashboard() -> impl IntoResponse {
    axum::response::Html(DASHBOARD_HTML)
}

/// The pages' shared code (`web/lib.js`: API calls, escaping, number and date formats).
pub const LIB_JS: &str = include_str!("../../../web/lib.js");

/// The pages' charts (`web/charts.js`: inline SVG line, bar and scatter charts).
pub const CHARTS_JS: &str = include_str!("../../../web/charts.js");

fn script(source: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        source,
    )
}

/// `GET /assets/lib.js`.
pub(crate) async fn lib_js() -> impl IntoResponse {
    script(LIB_JS)
}

/// `GET /assets/charts.js`.
pub(crate) async fn charts_js() -> impl IntoResponse {
    script(CHARTS_JS)
}

/// `GET /widget.js`: cached by browsers for five minutes.
pub(crate) async fn widget() -> impl IntoResponse {
    script(WIDGET_JS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn widget_is_under_15_kb_gzipped_and_calls_no_third_party() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(WIDGET_JS.as_bytes()).expect("gzip");
        let size = gz.finish().expect("gzip").len();
        assert!(size <= 15 * 1024, "widget.js is {size} bytes gzipped");
        // Every request goes to the configured endpoint: the only absolute URL is the
        // usage example in the header comment.
        let urls: Vec<&str> =
            WIDGET_JS.match_indices("http").map(|(i, _)| &WIDGET_JS[i..(i + 30).min(WIDGET_JS.len())]).collect();
        assert_eq!(urls, ["https://tailor.example/widget."], "{urls:?}");
    }
}
