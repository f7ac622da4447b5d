//! Logs and traces, set up once per process.
//!
//! An order crosses three processes and four queues; telemetry is what lets
//! an operator follow it. Everything goes through `tracing`: spans become
//! OpenTelemetry spans (`tracing-opentelemetry`), and each log line names the
//! trace and the order it belongs to.
//!
//! - `logs`: one line per event, text or JSON (`LOG_FORMAT`), with `trace_id`,
//!   `span_id` and `order_id`.
//! - `export`: the OTLP/HTTP exporter, configured by the standard `OTEL_*`
//!   variables and built only when an endpoint is set.
//! - `propagation`: the W3C trace context in and out of HTTP headers, message
//!   attributes and the event envelope, so one order is one trace.
//! - `http`: the server span and the metrics of every HTTP request.
//!
//! The spans of one order (messaging and database attributes follow
//! OpenTelemetry's semantic conventions):
//!
//! ```text
//! POST /orders (server)                              order-service
//! └─ place_order
//!    ├─ INSERT outbox (client)
//!    └─ publish orders (producer)                    order-service relay, parent restored from the row
//!       ├─ process invoice-orders (consumer)         invoice-service
//!       │  ├─ INSERT inbox, INSERT outbox (client)
//!       │  └─ publish billing (producer)             invoice-service relay
//!       │     ├─ process order-invoices (consumer)   order-service
//!       │     └─ process notification-invoices       notification-service
//!       └─ process notification-orders (consumer)    notification-service
//! ```
//!
//! Each relay batch also has a `send <destination>` span of its own, linked
//! to the publish spans of the events it carried.

pub mod export;
pub mod http;
pub mod logs;
pub mod propagation;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

use crate::config::{ConfigError, Env};
use contracts::topology::Service;
use export::TraceSettings;
use logs::{Format, LogLayer};

/// What `init` read: the log filter and format, and the trace settings.
pub struct TelemetrySettings {
    /// `RUST_LOG`, default `info` (and `warn` for the AWS SDK and sqlx).
    pub filter: EnvFilter,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub format: Format,
    pub traces: TraceSettings,
}

impl TelemetrySettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        service: Service,
    ) -> Result<Self, ConfigError> {
        let filter = match env.get("RUST_LOG") {
            Some(spec) => EnvFilter::try_new(&spec)
                .map_err(|e| ConfigError::new("RUST_LOG", format!("is invalid: {e}")))?,
            None => EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,sqlx=warn"),
        };
        let format = match env.get("LOG_FORMAT").as_deref() {
            None | Some("text") => Format::Text,
            Some("json") => Format::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    format!("must be 'text' or 'json', got '{other}'"),
                ));
            }
        };
        Ok(TelemetrySettings {
            filter,
            format,
            traces: TraceSettings::from_env(env, service.source())?,
        })
    }
}

/// Keeps the tracer provider alive; dropping it flushes the spans not yet
/// exported (bounded by the exporter's timeout).
#[must_use = "dropping the guard stops the span export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs logging and tracing for `service` from the environment. A second
/// call in one process (tests that build several apps) keeps the first.
pub fn init<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    service: Service,
) -> Result<Telemetry, ConfigError> {
    let settings = TelemetrySettings::from_env(env, service)?;
    let provider = settings.traces.provider()?;
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service.source()))
            .with_threads(false)
            .with_tracked_inactivity(false)
    });
    let installed = tracing_subscriber::registry()
        .with(settings.filter)
        .with(otel)
        .with(LogLayer::new(settings.format, std::io::stdout))
        .try_init()
        .is_ok();
    if !installed {
        return Ok(Telemetry { provider: None });
    }
    if let Some(export) = &settings.traces.export {
        tracing::info!(
            endpoint = %export.endpoint,
            service_name = %settings.traces.service_name,
            "exporting traces over OTLP/HTTP"
        );
    }
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// Exports every span ended so far, and waits for it (bounded by the
    /// exporter's timeout). For a process that may be frozen between two
    /// pieces of work: a Lambda function after each invocation, where the
    /// batch exporter's next scheduled export might come minutes later.
    pub async fn flush(&self) {
        let Some(provider) = self.provider.clone() else {
            return;
        };
        // `force_flush` blocks its thread until the export is done.
        match tokio::task::spawn_blocking(move || provider.force_flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "spans could not be exported"),
            Err(e) => tracing::warn!(error = %e, "the span export did not finish"),
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "spans may have been lost at shutdown");
        }
    }
}
