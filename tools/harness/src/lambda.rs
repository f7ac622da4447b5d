//! AWS Lambda on this machine, without Docker and without an account: the
//! Runtime API a function process polls, the function as a real process, and
//! an SQS event source mapping that feeds it the emulator's real messages.
//!
//! - `RuntimeApi` serves the three routes of the Lambda Runtime API a
//!   function uses (`/runtime/invocation/next`, `…/{id}/response`,
//!   `…/{id}/error`, and `/runtime/init/error`) on a free port; `invoke`
//!   hands it an event and waits for the function's answer.
//! - `FunctionProcess` starts a function binary (`invoice-function`…) with
//!   the variables Lambda sets (`AWS_LAMBDA_RUNTIME_API` and the function's
//!   name, memory, version) and the service's own.
//! - `EventSourceMapping` does what Lambda's SQS poller does: receives up to
//!   a batch (within a batching window), builds the SQS event, invokes, and
//!   deletes only the messages the function does not report failed
//!   (`ReportBatchItemFailures`); after a failed invocation it deletes
//!   nothing. The failures come back after their visibility timeout, and the
//!   queue's redrive policy ends them in the DLQ, as on AWS.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use serde_json::Value;
use testkit::process::ChildGuard;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// What a function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `…/response`: the function's result.
    Response(Value),
    /// `…/error`: the invocation failed (the whole batch comes back).
    Error(Value),
}

struct Invocation {
    id: String,
    event: Value,
    answer: oneshot::Sender<Answer>,
}

struct Shared {
    queued: Mutex<mpsc::Receiver<Invocation>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_errors: Mutex<Vec<Value>>,
    /// When the function first asked for an invocation: its init was done.
    first_poll: std::sync::OnceLock<Instant>,
    function_arn: String,
}

/// The Lambda Runtime API, served until dropped.
pub struct RuntimeApi {
    address: std::net::SocketAddr,
    invocations: mpsc::Sender<Invocation>,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

/// How long a function may take for one invocation (the deadline it is
/// told): the longest timeout the Lambda template allows.
fn function_timeout() -> Duration {
    Duration::from_secs(infra::functions::max_timeout_secs().max(1) as u64)
}

impl RuntimeApi {
    /// Serves the API for the function `name` on a free loopback port.
    pub async fn start(name: &str) -> anyhow::Result<RuntimeApi> {
        let (invocations, queued) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            queued: Mutex::new(queued),
            waiting: Mutex::new(HashMap::new()),
            init_errors: Mutex::new(Vec::new()),
            first_poll: std::sync::OnceLock::new(),
            function_arn: format!("arn:aws:lambda:us-east-1:000000000000:function:{name}"),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await
        });
        Ok(RuntimeApi {
            address,
            invocations,
            shared,
            stop,
        })
    }

    /// `AWS_LAMBDA_RUNTIME_API`: host and port, as Lambda sets it.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Hands `event` to the function and waits, up to `deadline`, for its
    /// answer. An invocation whose function dies is never answered: the
    /// caller sees the deadline pass.
    pub async fn invoke(&self, event: Value, deadline: Duration) -> anyhow::Result<Answer> {
        let (answer, answered) = oneshot::channel();
        let id = uuid::Uuid::now_v7().to_string();
        self.invocations
            .send(Invocation { id, event, answer })
            .await
            .context("the runtime API has stopped")?;
        match tokio::time::timeout(deadline, answered).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => anyhow::bail!("the invocation was dropped unanswered"),
            Err(_) => anyhow::bail!("the function did not answer within {deadline:?}"),
        }
    }

    /// When a function first asked for an invocation (its init done).
    pub fn first_poll(&self) -> Option<Instant> {
        self.shared.first_poll.get().copied()
    }

    /// What the function reported as init errors (a bad setting at start).
    pub async fn init_errors(&self) -> Vec<Value> {
        self.shared.init_errors.lock().await.clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `GET …/invocation/next`: the next event, once there is one.
async fn next(
    State(shared): State<Arc<Shared>>,
) -> Result<(HeaderMap, axum::Json<Value>), StatusCode> {
    shared.first_poll.get_or_init(Instant::now);
    let invocation = shared
        .queued
        .lock()
        .await
        .recv()
        .await
        .ok_or(StatusCode::GONE)?;
    let deadline = std::time::SystemTime::now() + function_timeout();
    let deadline_ms = deadline
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .as_millis();
    let mut headers = HeaderMap::new();
    let header = |v: &str| HeaderValue::from_str(v).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR);
    headers.insert("lambda-runtime-aws-request-id", header(&invocation.id)?);
    headers.insert(
        "lambda-runtime-deadline-ms",
        header(&deadline_ms.to_string())?,
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        header(&shared.function_arn)?,
    );
    shared
        .waiting
        .lock()
        .await
        .insert(invocation.id, invocation.answer);
    Ok((headers, axum::Json(invocation.event)))
}

async fn answer(shared: &Shared, id: &str, answer: Answer) -> StatusCode {
    match shared.waiting.lock().await.remove(id) {
        Some(waiting) => {
            let _ = waiting.send(answer);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

/// The function's body as JSON, or as a string when it is not JSON.
fn json_or_text(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    answer(&shared, &id, Answer::Response(json_or_text(&body))).await
}

async fn error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    answer(&shared, &id, Answer::Error(json_or_text(&body))).await
}

async fn init_error(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> StatusCode {
    shared.init_errors.lock().await.push(json_or_text(&body));
    StatusCode::ACCEPTED
}

/// A function binary running against a `RuntimeApi`.
pub struct FunctionProcess {
    pub name: String,
    process: ChildGuard,
}

impl FunctionProcess {
    /// Starts `binary` as the function `name` with the service's `env`.
    pub fn start(
        name: &str,
        binary: &Path,
        api: &RuntimeApi,
        env: &[(String, String)],
        log: &Path,
    ) -> anyhow::Result<FunctionProcess> {
        anyhow::ensure!(
            binary.exists(),
            "{} is missing: build it first (cargo build --workspace --bins)",
            binary.display()
        );
        let mut command = Command::new(binary);
        command.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command.envs(env.iter().map(|(k, v)| (k, v)));
        command.envs([
            ("AWS_LAMBDA_RUNTIME_API", api.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_string()),
        ]);
        Ok(FunctionProcess {
            name: name.to_string(),
            process: ChildGuard::spawn(name, command, log)?,
        })
    }

    /// The exit status, once the process has exited.
    pub fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        Ok(self.process.try_wait()?)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

/// What one poll of the mapping did.
#[derive(Debug, Clone)]
pub struct Polled {
    /// The event the function was invoked with.
    pub event: Value,
    pub answer: Answer,
    /// The ids of the messages that come back: those the function reported
    /// failed, or every one when the batch failed as a whole.
    pub failed: Vec<String>,
    /// How many messages were deleted.
    pub deleted: usize,
    /// How long the invocation took.
    pub took: Duration,
}

/// What an event source mapping with `ReportBatchItemFailures` does with an
/// answer, as AWS documents it: the ids that come back and the messages it
/// deletes. The whole batch fails, and nothing is deleted, when the
/// invocation failed, when the answer is not a partial batch response, or
/// when it names a message that is not in the batch (an empty id included):
/// a function that mislabels its failures must not lose them.
pub fn what_the_mapping_deletes<'a>(
    messages: &'a [Message],
    answer: &Answer,
) -> (Vec<String>, Vec<&'a Message>) {
    let ids: Vec<String> = messages
        .iter()
        .filter_map(|m| m.message_id.clone())
        .collect();
    let reported = match answer {
        Answer::Response(response) => serde_json::from_value::<SqsBatchResponse>(response.clone())
            .ok()
            .map(|r| {
                r.batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect::<Vec<_>>()
            })
            .filter(|reported| reported.iter().all(|id| ids.contains(id))),
        Answer::Error(_) => None,
    };
    match reported {
        Some(failed) => {
            let done = messages
                .iter()
                .filter(|m| m.message_id.as_ref().is_some_and(|id| !failed.contains(id)))
                .collect();
            (failed, done)
        }
        None => (ids, Vec::new()),
    }
}

/// The URL and the ARN of the queue `name`: where to receive, and what an
/// event source mapping and its records name.
pub async fn queue_url_and_arn(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
) -> anyhow::Result<(String, String)> {
    let url = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await?
        .queue_url
        .with_context(|| format!("no URL for queue {name}"))?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .with_context(|| format!("no ARN for queue {name}"))?;
    Ok((url, arn))
}

/// Lambda's SQS poller for one queue.
pub struct EventSourceMapping {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    /// `BatchSize`: at most ten, as SQS receives.
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds`: how long a poll gathers messages.
    pub batching_window: Duration,
}

impl EventSourceMapping {
    pub async fn new(sqs: aws_sdk_sqs::Client, queue: &str) -> anyhow::Result<Self> {
        let (queue_url, queue_arn) = queue_url_and_arn(&sqs, queue).await?;
        Ok(EventSourceMapping {
            sqs,
            queue_url,
            queue_arn,
            batch_size: 10,
            batching_window: Duration::from_secs(1),
        })
    }

    /// Gathers up to a batch within the batching window; empty when the
    /// queue has nothing visible.
    pub async fn receive(&self) -> anyhow::Result<Vec<Message>> {
        let started = Instant::now();
        let mut messages = Vec::new();
        while messages.len() < self.batch_size {
            let left = self.batching_window.saturating_sub(started.elapsed());
            if left.is_zero() && !messages.is_empty() {
                break;
            }
            let wait = left.as_secs().clamp(1, 20) as i32;
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages((self.batch_size - messages.len()) as i32)
                .wait_time_seconds(wait)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await?
                .messages
                .unwrap_or_default();
            if received.is_empty()
                && (messages.is_empty() || started.elapsed() >= self.batching_window)
            {
                break;
            }
            messages.extend(received);
        }
        Ok(messages)
    }

    /// The SQS event Lambda builds for `messages`.
    pub fn event_of(&self, messages: &[Message]) -> Value {
        let mut event = SqsEvent::default();
        event.records = messages.iter().map(|m| self.record_of(m)).collect();
        serde_json::to_value(event).unwrap_or(Value::Null)
    }

    fn record_of(&self, message: &Message) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = message.message_id.clone();
        record.receipt_handle = message.receipt_handle.clone();
        record.body = message.body.clone();
        record.md5_of_body = message.md5_of_body.clone();
        record.attributes = message
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        record.message_attributes = message
            .message_attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| {
                        let mut attribute = SqsMessageAttribute::default();
                        attribute.string_value = v.string_value.clone();
                        attribute.data_type = Some(v.data_type.clone());
                        (k.clone(), attribute)
                    })
                    .collect()
            })
            .unwrap_or_default();
        record.event_source = Some("aws:sqs".into());
        record.event_source_arn = Some(self.queue_arn.clone());
        record.aws_region = Some("us-east-1".into());
        record
    }

    /// One poll: receive, invoke, delete the successes. `None` when nothing
    /// was visible.
    pub async fn poll_once(
        &self,
        api: &RuntimeApi,
        deadline: Duration,
    ) -> anyhow::Result<Option<Polled>> {
        let messages = self.receive().await?;
        if messages.is_empty() {
            return Ok(None);
        }
        let event = self.event_of(&messages);
        let started = Instant::now();
        let answer = api.invoke(event.clone(), deadline).await?;
        let took = started.elapsed();
        let (failed, done) = what_the_mapping_deletes(&messages, &answer);
        let deleted = self.delete(&done).await?;
        Ok(Some(Polled {
            event,
            answer,
            failed,
            deleted,
            took,
        }))
    }

    async fn delete(&self, messages: &[&Message]) -> anyhow::Result<usize> {
        if messages.is_empty() {
            return Ok(0);
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle.clone())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
        anyhow::ensure!(out.failed.is_empty(), "deletes refused: {:?}", out.failed);
        Ok(out.successful.len())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::types::Message;
    use serde_json::json;

    use super::{Answer, what_the_mapping_deletes};

    fn batch() -> Vec<Message> {
        ["a", "b", "c"]
            .into_iter()
            .map(|id| {
                Message::builder()
                    .message_id(id)
                    .receipt_handle(format!("receipt-{id}"))
                    .build()
            })
            .collect()
    }

    fn deleted(messages: &[Message], answer: &Answer) -> (Vec<String>, Vec<String>) {
        let (failed, done) = what_the_mapping_deletes(messages, answer);
        let done = done.iter().filter_map(|m| m.message_id.clone()).collect();
        (failed, done)
    }

    #[test]
    fn only_the_reported_failures_come_back() {
        let messages = batch();
        let answer = Answer::Response(json!({"batchItemFailures": [{"itemIdentifier": "b"}]}));
        assert_eq!(
            deleted(&messages, &answer),
            (
                vec!["b".to_string()],
                vec!["a".to_string(), "c".to_string()]
            )
        );
        let none = Answer::Response(json!({"batchItemFailures": []}));
        assert_eq!(deleted(&messages, &none).1.len(), 3);
    }

    #[test]
    fn a_failed_invocation_a_bad_answer_or_an_unknown_id_fails_the_whole_batch() {
        let messages = batch();
        let all = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        for answer in [
            Answer::Error(json!({"errorMessage": "the database does not answer"})),
            Answer::Response(json!("not a batch response")),
            Answer::Response(json!({"batchItemFailures": [{"itemIdentifier": "z"}]})),
            Answer::Response(json!({"batchItemFailures": [{"itemIdentifier": ""}]})),
        ] {
            assert_eq!(
                deleted(&messages, &answer),
                (all.clone(), vec![]),
                "{answer:?}"
            );
        }
    }
}
