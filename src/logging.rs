//! Logs through `tracing`, to stderr: text for a terminal, or JSON lines with the stable
//! schema of `docs/logging.md` (`log_format = "json"` or `--log-json`).
//!
//! Every line written while a request is handled carries that request's ID (and the
//! W3C trace ID, when the client sent a `traceparent`): the proxy runs each request's
//! work inside [`request_span`], whose fields the JSON lines lift to the top level and
//! the text lines print as a `request{...}` prefix. Audit events are typed in
//! `crate::audit`, access lines are on the target `ssogate::access`.

use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    /// `"text"` or `"json"`.
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// The default filter: `info`, access lines only when asked for. `RUST_LOG` replaces it.
fn default_filter(access_log: bool) -> String {
    if access_log {
        "info".to_string()
    } else {
        "info,ssogate::access=off".to_string()
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the default filter.
pub fn init(format: Format, access_log: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_filter(access_log)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        Format::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .try_init(),
        Format::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

/// The span a request's work runs in: its ID, and the W3C trace ID when one came.
pub fn request_span(request_id: &str, trace_id: Option<&str>) -> tracing::Span {
    tracing::info_span!(
        target: "ssogate::request",
        "request",
        request_id = %request_id,
        trace_id = trace_id.map(tracing::field::display)
    )
}

/// One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, then the
/// fields of the spans the event is in (outermost first: `request_id`, `trace_id`), then
/// the event's own fields (`event`, ...), `message` last when there is one. Field values
/// keep their JSON types (numbers, booleans); a name written twice keeps the event's.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                let Some(formatted) = ext.get::<FormattedFields<N>>() else {
                    continue;
                };
                // JsonFields wrote the span's fields as one JSON object.
                if let Ok(serde_json::Value::Object(map)) =
                    serde_json::from_str::<serde_json::Value>(formatted.as_str())
                {
                    for (k, v) in map {
                        fields.set(k, v);
                    }
                }
            }
        }
        event.record(&mut fields);
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().to_lowercase().into());
        line.insert("target".into(), meta.target().into());
        let message = fields.message.take();
        let mut out = String::with_capacity(256);
        // serde_json's Map keeps keys sorted; the order above is written by hand so the
        // three fixed keys lead every line.
        out.push('{');
        let mut first = true;
        let mut put = |out: &mut String, k: &str, v: &serde_json::Value| {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&serde_json::Value::from(k).to_string());
            out.push(':');
            out.push_str(&v.to_string());
        };
        for key in ["timestamp", "level", "target"] {
            if let Some(v) = line.get(key) {
                put(&mut out, key, v);
            }
        }
        for (k, v) in &fields.list {
            put(&mut out, k, v);
        }
        if let Some(m) = message {
            put(&mut out, "message", &m);
        }
        out.push('}');
        writeln!(writer, "{out}")
    }
}

/// An event's (or span's) fields in order of first appearance, later values replacing.
#[derive(Default)]
struct Fields {
    list: Vec<(String, serde_json::Value)>,
    message: Option<serde_json::Value>,
}

impl Fields {
    fn set(&mut self, key: String, value: serde_json::Value) {
        if key == "message" {
            self.message = Some(value);
            return;
        }
        match self.list.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.list.push((key, value)),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name().to_string(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name().to_string(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name().to_string(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.set(field.name().to_string(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field.name().to_string(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

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
    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    fn json_lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let buf = Buf::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("info"))
            .with_writer(buf.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn a_line_in_a_request_carries_its_ids_at_the_top_level() {
        let lines = json_lines(|| {
            let span = request_span("abc123", Some("4bf92f3577b34da6a3ce929d0e0e4736"));
            let _g = span.enter();
            crate::audit::access_denied("wiki", "admin", "not_in_groups");
        });
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(l["level"], "info");
        assert_eq!(l["target"], "ssogate::audit");
        assert_eq!(l["event"], "access_denied");
        assert_eq!(l["request_id"], "abc123");
        assert_eq!(l["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(l["app"], "wiki");
        assert_eq!(l["route"], "admin");
        assert!(l["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn types_are_kept_and_the_message_is_last() {
        let buf = Buf::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("info"))
            .with_writer(buf.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            crate::audit::sessions_revoke_failed("cli", None, "store down \"quoted\"");
            crate::audit::scim_membership("g1", 3, 0);
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let raw: Vec<&str> = text.lines().collect();
        assert_eq!(raw.len(), 2);
        assert!(raw[0].starts_with("{\"timestamp\":"), "{}", raw[0]);
        assert!(
            raw[0].ends_with(",\"message\":\"could not end the user's sessions\"}"),
            "{}",
            raw[0]
        );
        let a: serde_json::Value = serde_json::from_str(raw[0]).unwrap();
        assert_eq!(a["level"], "error");
        assert_eq!(a["error"], "store down \"quoted\"");
        assert_eq!(a["result"], "failure");
        assert!(a.get("request_id").is_none());
        let b: serde_json::Value = serde_json::from_str(raw[1]).unwrap();
        assert_eq!(b["added"], 3);
        assert_eq!(b["removed"], 0);
    }

    #[test]
    fn access_lines_are_off_unless_asked_for() {
        assert!(default_filter(false).contains("ssogate::access=off"));
        assert!(!default_filter(true).contains("ssogate::access"));
        assert_eq!(Format::parse("JSON"), Some(Format::Json));
        assert_eq!(Format::parse("xml"), None);
    }
}
