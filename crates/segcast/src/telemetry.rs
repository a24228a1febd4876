//! Logs as one JSON object per line, in the shape Cloud Logging understands (`severity`, `message`, `time`,
//! plus the event's fields and those of the spans it is in: a campaign's or a batch's id is written on every line
//! logged while handling it), so they are structured in production and greppable locally. A request's span
//! carries Cloud Trace's ids ([`request_span`], from the `traceparent` or `X-Cloud-Trace-Context` header Cloud
//! Run passes), so each line is correlated with its trace (`logging.googleapis.com/trace`, `.../spanId`).
//!
//! The messages that terraform's log-based metrics and alerts match are constants in [`events`]; infra-check
//! fails when terraform names a message or field the code does not write.

use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, format::Writer};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, prelude::*};

/// Installs the JSON logger. `RUST_LOG` filters (default `info`). Call once, first thing in `main`.
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(json_layer(service, std::io::stderr))
        .try_init();
}

/// The JSON log layer writing to `writer`: what [`init`] installs with stderr (tests capture logs with it).
pub fn json_layer<S, W>(service: &'static str, writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .event_format(CloudLoggingFormat { service })
        .with_writer(writer)
}

struct CloudLoggingFormat {
    service: &'static str,
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.rest.insert(field.name().to_owned(), value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.rest.insert(field.name().to_owned(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        if field.name() == "message" {
            self.message = s;
        } else {
            self.rest.insert(field.name().to_owned(), s.into());
        }
    }
}

impl<S, N> FormatEvent<S, N> for CloudLoggingFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let severity = match *meta.level() {
            tracing::Level::ERROR => "ERROR",
            tracing::Level::WARN => "WARNING",
            tracing::Level::INFO => "INFO",
            tracing::Level::DEBUG | tracing::Level::TRACE => "DEBUG",
        };
        let mut obj = serde_json::Map::new();
        obj.insert("severity".into(), severity.into());
        obj.insert("message".into(), fields.message.into());
        let now = time::OffsetDateTime::now_utc();
        obj.insert(
            "time".into(),
            now.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
                .into(),
        );
        obj.insert("service".into(), self.service.into());
        obj.insert("target".into(), meta.target().into());
        for (k, v) in fields.rest {
            obj.entry(k).or_insert(v);
        }
        // The fields of the spans the event is in, innermost first (an inner span's field wins; the event's own
        // win over all). The fields are stored as JSON by `JsonFields`.
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                let ext = span.extensions();
                let Some(stored) = ext.get::<tracing_subscriber::fmt::FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(serde_json::Value::Object(map)) =
                    serde_json::from_str::<serde_json::Value>(stored.fields.as_str())
                {
                    for (k, v) in map {
                        obj.entry(k).or_insert(v);
                    }
                }
            }
        }
        writeln!(writer, "{}", serde_json::Value::Object(obj))
    }
}

/// Cloud Trace's trace and span ids of a request, from W3C `traceparent` (`00-<32 hex>-<16 hex>-<flags>`) or
/// Google's `X-Cloud-Trace-Context` (`<32 hex>/<decimal span>;o=1`), whichever is there and well-formed.
pub fn trace_ids(headers: &http::HeaderMap) -> Option<(String, String)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(tp) = header("traceparent") {
        let parts: Vec<&str> = tp.trim().split('-').collect();
        if let [_, trace, span, _] = parts[..]
            && is_hex(trace, 32)
            && is_hex(span, 16)
        {
            return Some((trace.to_ascii_lowercase(), span.to_ascii_lowercase()));
        }
    }
    let cloud = header("x-cloud-trace-context")?;
    let (trace, rest) = cloud.trim().split_once('/')?;
    let span: u64 = rest.split(';').next()?.parse().ok()?;
    is_hex(trace, 32).then(|| (trace.to_ascii_lowercase(), format!("{span:016x}")))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0')
}

/// The span of one HTTP request (a push, a tick): every line logged while handling it carries Cloud Trace's
/// `logging.googleapis.com/trace` (`projects/<project>/traces/<id>`) and `logging.googleapis.com/spanId` when
/// the request came with a trace header.
pub fn request_span(name: &'static str, headers: &http::HeaderMap, project: &str) -> tracing::Span {
    match trace_ids(headers) {
        Some((trace, span)) => tracing::info_span!(
            "request",
            route = name,
            "logging.googleapis.com/trace" = format!("projects/{project}/traces/{trace}"),
            "logging.googleapis.com/spanId" = span,
        ),
        None => tracing::info_span!("request", route = name),
    }
}

/// The log messages that terraform's log-based metrics and alerts match (`jsonPayload.message`), with the fields
/// they extract. The code logs them through these constants; infra-check checks terraform against [`ALL`].
pub mod events {
    /// A batch handled by the delivery handler: fields `channel`, `result` and its outcome counts.
    pub const BATCH_HANDLED: &str = "batch handled";
    /// The outcome of a batch's LINE requests, one line per outcome and reason: fields `channel`, `outcome`,
    /// `reason`, `recipients`, `requests`, `rate_limited` (429 answers), `line_latency_ms` (mean per request).
    pub const BATCH_OUTCOMES: &str = "batch outcomes";
    /// A campaign's fan-out stopped at its tick budget (it goes on next tick): fields `campaign`, `batches`.
    pub const FANOUT_YIELDS: &str = "fan-out yields at its time budget";
    /// A campaign changed state: fields `campaign`, `from`, `to`, `round`.
    pub const CAMPAIGN_ADVANCED: &str = "campaign advanced";
    /// A round stopped growing and its unfinished batches were re-published: fields `campaign`, `round`.
    pub const ROUND_STALLED: &str = "round stalled: re-published its batches that are not done";
    /// LINE's monthly quota ran out on a channel: fields `channel`, `campaign`, `batch`.
    pub const QUOTA_EXHAUSTED: &str = "LINE monthly quota exhausted: campaign paused";
    /// A service could not start: field `error`.
    pub const START_FAILED: &str = "start-up failed";

    /// (message, fields) of every event above.
    pub const ALL: &[(&str, &[&str])] = &[
        (
            BATCH_HANDLED,
            &["channel", "result", "batch", "campaign", "elapsed_ms"],
        ),
        (
            BATCH_OUTCOMES,
            &[
                "channel",
                "outcome",
                "reason",
                "recipients",
                "requests",
                "rate_limited",
                "line_latency_ms",
            ],
        ),
        (FANOUT_YIELDS, &["campaign", "batches"]),
        (CAMPAIGN_ADVANCED, &["campaign", "from", "to", "round"]),
        (ROUND_STALLED, &["campaign", "round"]),
        (QUOTA_EXHAUSTED, &["channel", "campaign", "batch"]),
        (START_FAILED, &["error"]),
    ];
}

/// Runs a service's start-up and serving; a failure is logged as JSON (Cloud Logging reads it as an error
/// entry, not as loose text) and the process exits with status 1.
pub async fn run_service<F>(service: F) -> !
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    match service.await {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "{}", events::START_FAILED);
            std::process::exit(1)
        }
    }
}

/// A secret string (channel secret, access token): its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber =
            tracing_subscriber::registry().with(json_layer("test", move || out.clone()));
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_carry_their_spans_fields_and_cloud_traces_ids() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let got = lines(|| {
            let _request = request_span("push", &headers, "proj").entered();
            let _batch =
                tracing::info_span!("batch", campaign = "c_x", batch = "c_x.r1.f0.o0").entered();
            tracing::info!(channel = "1", "{}", events::BATCH_HANDLED);
        });
        let line = &got[0];
        assert_eq!(line["message"], "batch handled");
        assert_eq!(line["campaign"], "c_x");
        assert_eq!(line["batch"], "c_x.r1.f0.o0");
        assert_eq!(line["channel"], "1");
        assert_eq!(
            line["logging.googleapis.com/trace"],
            "projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(line["logging.googleapis.com/spanId"], "00f067aa0ba902b7");
        assert_eq!(line["severity"], "INFO");
    }

    #[test]
    fn trace_ids_come_from_either_header_and_bad_ones_are_ignored() {
        let h = |k: &str, v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
            m
        };
        assert_eq!(
            trace_ids(&h(
                "x-cloud-trace-context",
                "105445aa7843bc8bf206b12000100000/1;o=1"
            )),
            Some((
                "105445aa7843bc8bf206b12000100000".into(),
                "0000000000000001".into()
            ))
        );
        for bad in [
            "00-zz-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "junk",
        ] {
            assert_eq!(trace_ids(&h("traceparent", bad)), None, "{bad}");
        }
        assert_eq!(trace_ids(&http::HeaderMap::new()), None);
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("very-secret");
        assert!(!format!("{s:?} {s}").contains("very-secret"));
        assert_eq!(s.expose(), "very-secret");
    }
}
