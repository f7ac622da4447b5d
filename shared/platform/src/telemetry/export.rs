//! Where spans go: the OTLP exporter, over HTTP with protobuf bodies.
//!
//! Configured by the standard variables. With neither
//! `OTEL_EXPORTER_OTLP_ENDPOINT` nor `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set
//! (or `OTEL_TRACES_EXPORTER=none`) no exporter is built: spans still get ids,
//! so the trace context flows through this service and its logs carry trace
//! ids, but nothing is buffered or sent. `OTEL_SDK_DISABLED=true` turns the
//! tracing layer off altogether.
//!
//! The exporter runs on the SDK's batch thread, outside the service's Tokio
//! runtime. It sends with the workspace's `reqwest` client on a small runtime
//! of its own ([`OtlpTransport`]), so a final flush at shutdown does not
//! depend on the service runtime still having a free worker. Plain `http://`
//! only: no TLS is built in, and a collector or agent beside the service (the
//! usual OTLP deployment) needs none.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::config::{ConfigError, Env};

/// The one OTLP protocol built in.
const HTTP_PROTOBUF: &str = "http/protobuf";
/// Appended to `OTEL_EXPORTER_OTLP_ENDPOINT`, as the specification says.
const TRACES_PATH: &str = "v1/traces";

/// What the tracing side of telemetry does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSettings {
    /// `OTEL_SDK_DISABLED`, default false: no tracing layer at all (no trace
    /// ids in logs, no context handed on).
    pub disabled: bool,
    /// `OTEL_SERVICE_NAME`, default the service's event source
    /// (`order-service`…).
    pub service_name: String,
    /// Where to send spans; `None` builds no exporter.
    pub export: Option<ExportSettings>,
}

/// The OTLP/HTTP exporter's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSettings {
    /// The full URL spans are POSTed to: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// as given, or `OTEL_EXPORTER_OTLP_ENDPOINT` followed by `/v1/traces`.
    pub endpoint: String,
    /// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT`
    /// (milliseconds), default 10000: the bound on one export request.
    pub timeout: Duration,
}

impl TraceSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        default_service_name: &str,
    ) -> Result<Self, ConfigError> {
        let disabled = match env.get("OTEL_SDK_DISABLED") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(ConfigError::new(
                    "OTEL_SDK_DISABLED",
                    format!("must be 'true' or 'false', got '{v}'"),
                ));
            }
        };
        let exporter_wanted = match env.get("OTEL_TRACES_EXPORTER").as_deref() {
            None | Some("otlp") => true,
            Some("none") => false,
            Some(other) => {
                return Err(ConfigError::new(
                    "OTEL_TRACES_EXPORTER",
                    format!("must be 'otlp' or 'none', got '{other}'"),
                ));
            }
        };
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(protocol) = env.get(name)
                && protocol != HTTP_PROTOBUF
            {
                return Err(ConfigError::new(
                    name,
                    format!(
                        "must be '{HTTP_PROTOBUF}' (the only protocol built in), got '{protocol}'"
                    ),
                ));
            }
        }
        let endpoint = match (
            env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            env.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(url), _) => Some(checked_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &url)?),
            (None, Some(base)) => {
                let base = checked_url("OTEL_EXPORTER_OTLP_ENDPOINT", &base)?;
                Some(format!("{}/{TRACES_PATH}", base.trim_end_matches('/')))
            }
            (None, None) => None,
        };
        let timeout_name = if env.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT").is_some() {
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
        } else {
            "OTEL_EXPORTER_OTLP_TIMEOUT"
        };
        let timeout = env.millis_or(timeout_name, 10_000)?;
        if timeout.is_zero() {
            return Err(ConfigError::new(timeout_name, "must be at least 1 ms"));
        }
        let service_name = env
            .get("OTEL_SERVICE_NAME")
            .unwrap_or_else(|| default_service_name.to_string());
        Ok(TraceSettings {
            disabled,
            service_name,
            export: endpoint
                .filter(|_| exporter_wanted && !disabled)
                .map(|endpoint| ExportSettings { endpoint, timeout }),
        })
    }

    /// The tracer provider: with a batch exporter when one is configured,
    /// without any span processor otherwise. `None` when disabled.
    pub fn provider(&self) -> Result<Option<SdkTracerProvider>, ConfigError> {
        if self.disabled {
            return Ok(None);
        }
        let resource = Resource::builder()
            .with_service_name(self.service_name.clone())
            .build();
        let builder = SdkTracerProvider::builder().with_resource(resource);
        let Some(export) = &self.export else {
            return Ok(Some(builder.build()));
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(export.endpoint.clone())
            .with_timeout(export.timeout)
            .with_http_client(OtlpTransport::new(export.timeout))
            .build()
            .map_err(|e| {
                ConfigError::new(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    format!("cannot build the exporter: {e}"),
                )
            })?;
        Ok(Some(builder.with_batch_exporter(exporter).build()))
    }
}

/// `url` if it is a plain `http://` URL; the error names `name`.
fn checked_url(name: &str, url: &str) -> Result<String, ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ConfigError::new(name, format!("is not a URL ('{url}'): {e}")))?;
    match parsed.scheme() {
        "http" if parsed.host().is_some() => Ok(url.to_string()),
        "https" => Err(ConfigError::new(
            name,
            format!(
                "must be a plain http:// URL, got '{url}': no TLS is built in, export to a collector beside the service"
            ),
        )),
        _ => Err(ConfigError::new(
            name,
            format!("must be an http:// URL with a host, got '{url}'"),
        )),
    }
}

/// The HTTP client the OTLP exporter sends with: the workspace's `reqwest`,
/// driven by a current-thread runtime that lives on the SDK's export thread.
/// Built on first use there, so nothing of it runs on the service's runtime.
#[derive(Debug)]
pub struct OtlpTransport {
    timeout: Duration,
    inner: Mutex<Option<(tokio::runtime::Runtime, reqwest::Client)>>,
}

impl OtlpTransport {
    pub fn new(timeout: Duration) -> Self {
        OtlpTransport {
            timeout,
            inner: Mutex::new(None),
        }
    }

    fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err("the OTLP transport runs only on the batch export thread".into());
        }
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| "the OTLP transport is poisoned")?;
        if inner.is_none() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let client = reqwest::Client::builder().timeout(self.timeout).build()?;
            *inner = Some((runtime, client));
        }
        let Some((runtime, client)) = inner.as_ref() else {
            return Err("the OTLP transport has no client".into());
        };
        runtime.block_on(async {
            let response = client.execute(reqwest::Request::try_from(request)?).await?;
            let mut answer = Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = response.headers().clone();
            }
            Ok::<_, HttpError>(answer.body(response.bytes().await?)?)
        })
    }
}

impl HttpClient for OtlpTransport {
    // The trait is declared with `async_trait`; this is its expansion. The
    // work is synchronous (see `send`), so the future is ready at once.
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(std::future::ready(self.send(request)))
    }
}

impl Drop for OtlpTransport {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime:
        // the provider may be dropped on a service worker.
        if let Ok(mut inner) = self.inner.lock()
            && let Some((runtime, _)) = inner.take()
        {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env_of;

    fn settings(pairs: &[(&str, &str)]) -> Result<TraceSettings, ConfigError> {
        TraceSettings::from_env(&env_of(pairs), "order-service")
    }

    #[test]
    fn without_an_endpoint_no_exporter_is_configured() {
        let s = settings(&[]).expect("valid");
        assert_eq!(s.export, None);
        assert!(!s.disabled);
        assert_eq!(s.service_name, "order-service");
    }

    #[test]
    fn the_base_endpoint_gets_the_traces_path_and_the_signal_endpoint_is_taken_as_is() {
        let s = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318/")]).expect("valid");
        let export = s.export.expect("an exporter");
        assert_eq!(export.endpoint, "http://jaeger:4318/v1/traces");
        assert_eq!(export.timeout, Duration::from_secs(10));

        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector:4318/custom",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_SERVICE_NAME", "orders-eu"),
        ])
        .expect("valid");
        assert_eq!(s.service_name, "orders-eu");
        let export = s.export.expect("an exporter");
        assert_eq!(export.endpoint, "http://collector:4318/custom");
        assert_eq!(export.timeout, Duration::from_millis(2500));
    }

    #[test]
    fn the_exporter_can_be_turned_off_with_an_endpoint_set() {
        for off in [
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_SDK_DISABLED", "true"),
        ] {
            let s = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318"), off])
                .expect("valid");
            assert_eq!(s.export, None, "{off:?}");
        }
    }

    #[test]
    fn bad_values_name_their_variable_on_one_line() {
        for (pairs, name) in [
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "jaeger:4318")],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                vec![("OTEL_TRACES_EXPORTER", "zipkin")],
                "OTEL_TRACES_EXPORTER",
            ),
            (vec![("OTEL_SDK_DISABLED", "yes")], "OTEL_SDK_DISABLED"),
            (
                vec![("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")],
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ),
        ] {
            let err = settings(&pairs).expect_err("must fail");
            assert_eq!(err.name, name);
            assert!(!err.to_string().contains('\n'), "{err}");
        }
    }
}
