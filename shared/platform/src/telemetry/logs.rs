//! Log lines: one per event, as text or JSON, each naming its trace and order.
//!
//! A log line is only useful in a message-driven system if it can be tied to
//! the order it is about and to the trace that shows every hop of that order.
//! So every line written inside a span carries `trace_id` and `span_id` (from
//! the span's OpenTelemetry context) and `order_id` (from the nearest span in
//! scope that recorded one), in both formats:
//!
//! ```text
//! 2026-05-01T10:00:00.123456Z DEBUG consumer.process{queue=invoice-orders order_id=0195…}: invoice issued trace_id=4bf9… span_id=00f0…
//! {"timestamp":"…","level":"DEBUG","target":"invoice::usecases","fields":{"message":"invoice issued"},"span":{"name":"consumer.process","queue":"invoice-orders",…},"trace_id":"4bf9…","span_id":"00f0…","order_id":"0195…"}
//! ```
//!
//! The layer keeps each span's fields itself, so both formats read them
//! without re-parsing text. It leaves out `otel.*` (instructions to the
//! tracing layer) and the `messaging.*` and `db.*` attributes, which repeat
//! for trace backends what the plain fields already say.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::propagation;

/// The span field that names the order a span is about.
pub const ORDER_ID_FIELD: &str = "order_id";

/// The two formats `LOG_FORMAT` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Writes every event as one line to `writer` (stdout in the services).
pub struct LogLayer<W> {
    format: Format,
    writer: W,
    /// The subscriber this layer is part of, to look up OpenTelemetry
    /// contexts: inside a subscriber callback the current dispatcher cannot
    /// be reached.
    dispatch: OnceLock<WeakDispatch>,
}

impl<W> LogLayer<W> {
    pub fn new(format: Format, writer: W) -> Self {
        LogLayer {
            format,
            writer,
            dispatch: OnceLock::new(),
        }
    }
}

/// The fields a span was created with or recorded later, and its ids once
/// looked up.
#[derive(Default)]
struct SpanFields {
    fields: Map<String, Value>,
    ids: OnceLock<Option<(String, String)>>,
}

/// Field name prefixes left out of log lines: instructions to the tracing
/// layer (`otel.*`) and semantic-convention attributes that repeat, for
/// trace backends, what the plain fields (`queue`, `event_id`…) already say.
const SPAN_ONLY: [&str; 3] = ["otel.", "messaging.", "db."];

/// Collects fields as JSON values, leaving out the span-only ones.
struct Collect<'a>(&'a mut Map<String, Value>);

impl Collect<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if !SPAN_ONLY.iter().any(|prefix| name.starts_with(prefix)) {
            self.0.insert(name.to_string(), value);
        }
    }
}

impl Visit for Collect<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

impl<S, W> Layer<S> for LogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut Collect(&mut fields.fields));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
            values.record(&mut Collect(&mut fields.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        event.record(&mut Collect(&mut fields));
        // The spans in scope, outermost first: (name, fields).
        let scope: Vec<(&'static str, Map<String, Value>)> = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .map(|span| {
                        let fields = span
                            .extensions()
                            .get::<SpanFields>()
                            .map(|f| f.fields.clone())
                            .unwrap_or_default();
                        (span.name(), fields)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let leaf = event
            .parent()
            .cloned()
            .or_else(|| ctx.lookup_current().map(|s| s.id()));
        let dispatch = self.dispatch.get().and_then(WeakDispatch::upgrade);
        let ids = leaf.zip(dispatch).and_then(|(id, d)| ids_of(&id, &ctx, &d));
        let order_id = scope
            .iter()
            .rev()
            .find_map(|(_, f)| f.get(ORDER_ID_FIELD))
            .map(plain);
        let line = Line {
            event,
            fields,
            scope: &scope,
            ids: ids.as_ref(),
            order_id: order_id.as_deref(),
        };
        let text = match self.format {
            Format::Text => line.text(),
            Format::Json => line.json(),
        };
        // One write per line, so lines of concurrent tasks never interleave.
        let _ = self.writer.make_writer().write_all(text.as_bytes());
    }
}

/// The trace and span ids of span `id`, looked up once. The lookup starts
/// the span's OpenTelemetry context, so it happens at the first line written
/// inside the span, after its parent was set.
fn ids_of<S>(id: &Id, ctx: &Context<'_, S>, dispatch: &Dispatch) -> Option<(String, String)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let span = ctx.span(id)?;
    if let Some(ids) = span
        .extensions()
        .get::<SpanFields>()
        .and_then(|f| f.ids.get())
    {
        return ids.clone();
    }
    // No extension guard may be held here: the OpenTelemetry layer takes them.
    let ids = tracing_opentelemetry::get_otel_context(id, dispatch)
        .as_ref()
        .and_then(propagation::ids_of);
    if let Some(fields) = span.extensions().get::<SpanFields>() {
        let _ = fields.ids.set(ids.clone());
    }
    ids
}

/// A string value as written in text: without quotes.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A field value in text: bare when it is one word, quoted otherwise.
fn text_value(value: &Value) -> String {
    match value {
        Value::String(s)
            if !s.is_empty()
                && !s.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') =>
        {
            s.clone()
        }
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

struct Line<'a> {
    event: &'a Event<'a>,
    fields: Map<String, Value>,
    scope: &'a [(&'static str, Map<String, Value>)],
    ids: Option<&'a (String, String)>,
    order_id: Option<&'a str>,
}

impl Line<'_> {
    fn timestamp() -> String {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }

    fn text(mut self) -> String {
        let meta = self.event.metadata();
        let mut out = format!("{} {:>5} ", Self::timestamp(), meta.level());
        for (name, fields) in self.scope {
            out.push_str(name);
            if !fields.is_empty() {
                out.push('{');
                let pairs: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", text_value(v)))
                    .collect();
                out.push_str(&pairs.join(" "));
                out.push('}');
            }
            out.push(':');
        }
        if !self.scope.is_empty() {
            out.push(' ');
        }
        if let Some(message) = self.fields.remove("message") {
            out.push_str(&plain(&message));
        }
        for (k, v) in &self.fields {
            let _ = write!(out, " {k}={}", text_value(v));
        }
        if let Some((trace_id, span_id)) = self.ids {
            let _ = write!(out, " trace_id={trace_id} span_id={span_id}");
        }
        out.push('\n');
        out
    }

    fn json(self) -> String {
        let meta = self.event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::from(Self::timestamp()));
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("target".into(), Value::from(meta.target()));
        line.insert("fields".into(), Value::Object(self.fields));
        if let Some((name, fields)) = self.scope.last() {
            let mut span = fields.clone();
            span.insert("name".into(), Value::from(*name));
            line.insert("span".into(), Value::Object(span));
        }
        if let Some((trace_id, span_id)) = self.ids {
            line.insert("trace_id".into(), Value::from(trace_id.as_str()));
            line.insert("span_id".into(), Value::from(span_id.as_str()));
        }
        if let Some(order_id) = self.order_id {
            line.insert("order_id".into(), Value::from(order_id));
        }
        let mut out = Value::Object(line).to_string();
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::prelude::*;

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    /// The lines written while `f` runs under the OpenTelemetry and log layers.
    fn lines(format: Format, f: impl FnOnce()) -> Vec<String> {
        let buffer = Buffer::default();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(LogLayer::new(format, buffer.clone()));
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.0.lock().expect("buffer").clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn in_an_order_span() {
        let outer = tracing::info_span!(
            "consumer.process",
            otel.name = "process q",
            messaging.system = "aws_sqs",
            queue = "q",
            order_id = "0195-order"
        );
        let _outer = outer.enter();
        let inner = tracing::info_span!("inbox.record");
        let _inner = inner.enter();
        tracing::info!(attempt = 2, "event applied");
    }

    #[test]
    fn a_text_line_inside_a_span_carries_the_trace_id_and_the_order_id() {
        let lines = lines(Format::Text, in_an_order_span);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(
            line.contains(
                " INFO consumer.process{order_id=0195-order queue=q}:inbox.record: event applied attempt=2 trace_id="
            ),
            "{line}"
        );
        assert!(
            !line.contains("otel.") && !line.contains("messaging."),
            "{line}"
        );
        let trace_id = line.split("trace_id=").nth(1).expect("a trace id");
        assert_eq!(trace_id.split(' ').next().map(str::len), Some(32), "{line}");
    }

    #[test]
    fn a_json_line_inside_a_span_carries_the_trace_id_and_the_order_id() {
        let lines = lines(Format::Json, in_an_order_span);
        let line: Value = serde_json::from_str(&lines[0]).expect("one JSON object");
        assert_eq!(line["order_id"], "0195-order");
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32));
        assert_eq!(line["span_id"].as_str().map(str::len), Some(16));
        assert_eq!(line["fields"]["message"], "event applied");
        assert_eq!(line["fields"]["attempt"], 2);
        assert_eq!(line["span"]["name"], "inbox.record");
        assert_eq!(line["level"], "INFO");
    }

    #[test]
    fn a_line_outside_any_span_has_no_trace() {
        let lines = lines(Format::Json, || tracing::warn!("starting"));
        let line: Value = serde_json::from_str(&lines[0]).expect("one JSON object");
        assert!(line.get("trace_id").is_none() && line.get("order_id").is_none());
        assert_eq!(line["fields"]["message"], "starting");
    }
}
