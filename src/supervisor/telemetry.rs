//! Telemetry and Logs API delivery: each subscriber gets a task that batches its records
//! (`maxItems`, `maxBytes`, `timeoutMs`) and POSTs each batch as a JSON array over one
//! keep-alive connection made inside the environment's network namespace, retrying a little
//! and counting what it had to drop (reported as `platform.logsDropped`). Records of the Init
//! phase are kept and replayed to subscribers that subscribe during Init.

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::netns::Connector;
use crate::api::telemetry::{Api, Buffering, Event, Record, Subscription, Types};

/// Pauses between the attempts to deliver one batch.
const RETRY_PAUSES: [Duration; 3] = [
    Duration::from_millis(20),
    Duration::from_millis(100),
    Duration::from_millis(500),
];

/// What `platform.logsDropped` says.
const DROPPED_REASON: &str =
    "Some logs were dropped because the downstream consumer is slower than the logs production rate";

/// The environment's subscribers and the Init records kept for late ones.
pub struct Telemetry {
    connector: Option<Rc<Connector>>,
    subscribers: Vec<Subscriber>,
    /// Records since Init began, while it lasts.
    init_records: Option<Vec<Event>>,
}

struct Subscriber {
    /// The extension that subscribed.
    name: String,
    api: Api,
    schema_version: String,
    types: Types,
    queue: mpsc::UnboundedSender<Message>,
}

enum Message {
    Event(Event),
    /// Deliver what is buffered now (Shutdown is coming).
    Flush,
}

impl Subscriber {
    fn send(&self, event: &Event) {
        for record in event.record.for_api(self.api, &self.schema_version) {
            if record.wanted_by(self.types) {
                let _ = self.queue.send(Message::Event(Event {
                    time: event.time.clone(),
                    record,
                }));
            }
        }
    }
}

impl Telemetry {
    /// Delivers through `connector`; without one (no network namespace to join) records are
    /// dropped.
    pub fn new(connector: Option<Connector>) -> Self {
        Self {
            connector: connector.map(Rc::new),
            subscribers: Vec::new(),
            init_records: None,
        }
    }

    /// A record, now, to every subscriber that wants it.
    pub fn emit(&mut self, record: Record) {
        let event = Event {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            record,
        };
        for subscriber in &self.subscribers {
            subscriber.send(&event);
        }
        if let Some(kept) = &mut self.init_records {
            kept.push(event);
        }
    }

    /// Init begins: keep its records for subscribers to come.
    pub fn begin_init(&mut self) {
        self.init_records = Some(Vec::new());
    }

    /// Init is over: no more subscriptions, nothing more to replay.
    pub fn end_init(&mut self) {
        self.init_records = None;
    }

    /// Adds the subscriber of extension `name`: it receives the Init records so far, then its
    /// own subscription record, then whatever comes. Subscribing again replaces the earlier
    /// subscription (Lambda's subscriptions are idempotent).
    pub fn subscribe(&mut self, name: &str, subscription: Subscription) {
        self.subscribers
            .retain(|s| s.name != name || s.api != subscription.api);
        let (queue, incoming) = mpsc::unbounded_channel();
        let subscriber = Subscriber {
            name: name.to_string(),
            api: subscription.api,
            schema_version: subscription.schema_version.clone(),
            types: subscription.types,
            queue,
        };
        if let Some(connector) = &self.connector {
            tokio::task::spawn_local(deliver(incoming, connector.clone(), subscription.clone()));
        }
        for event in self.init_records.iter().flatten() {
            subscriber.send(event);
        }
        self.subscribers.push(subscriber);
        let (name, state, types) = (name.to_string(), "Subscribed", subscription.types.names());
        self.emit(match subscription.api {
            Api::Telemetry => Record::TelemetrySubscription { name, state, types },
            Api::Logs => Record::LogsSubscription { name, state, types },
        });
    }

    /// Every subscriber delivers what it holds now.
    pub fn flush(&self) {
        for subscriber in &self.subscribers {
            let _ = subscriber.queue.send(Message::Flush);
        }
    }

    /// The subscribers are gone with their extensions (a reset): their tasks deliver what
    /// they hold, or fail to, and end.
    pub fn clear(&mut self) {
        self.flush();
        self.subscribers.clear();
    }
}

/// One subscriber's batching and delivery, until the supervisor drops its queue.
async fn deliver(
    mut incoming: mpsc::UnboundedReceiver<Message>,
    connector: Rc<Connector>,
    subscription: Subscription,
) {
    let mut sender = Sender {
        connector,
        port: subscription.port,
        path: subscription.path.clone(),
        connection: None,
        dropped: (0, 0),
        reports_drops: Record::LogsDropped {
            reason: DROPPED_REASON,
            dropped_records: 0,
            dropped_bytes: 0,
        }
        .wanted_by(subscription.types),
    };
    let Buffering {
        max_items,
        max_bytes,
        timeout_ms,
    } = subscription.buffering;
    let mut batch: Vec<Event> = Vec::new();
    let mut size = 0usize;
    let mut due: Option<Instant> = None;
    loop {
        let message = match due {
            Some(at) => tokio::time::timeout_at(at, incoming.recv())
                .await
                .unwrap_or(Some(Message::Flush)),
            None => incoming.recv().await,
        };
        let full = match message {
            None => {
                sender.send(std::mem::take(&mut batch)).await;
                return;
            }
            Some(Message::Flush) => true,
            Some(Message::Event(event)) => {
                size += serde_json::to_vec(&event).map_or(0, |b| b.len());
                batch.push(event);
                due.get_or_insert_with(|| {
                    Instant::now() + Duration::from_millis(timeout_ms.into())
                });
                batch.len() >= max_items as usize || size >= max_bytes as usize
            }
        };
        if full {
            sender.send(std::mem::take(&mut batch)).await;
            size = 0;
            due = None;
        }
    }
}

/// Delivers batches to one subscriber over a kept connection.
struct Sender {
    connector: Rc<Connector>,
    port: u16,
    path: String,
    connection: Option<SendRequest<Full<Bytes>>>,
    /// Records and bytes dropped since the last delivery.
    dropped: (u64, u64),
    reports_drops: bool,
}

impl Sender {
    async fn send(&mut self, mut batch: Vec<Event>) {
        if batch.is_empty() {
            return;
        }
        if self.dropped != (0, 0) && self.reports_drops {
            batch.insert(
                0,
                Event {
                    time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                    record: Record::LogsDropped {
                        reason: DROPPED_REASON,
                        dropped_records: self.dropped.0,
                        dropped_bytes: self.dropped.1,
                    },
                },
            );
        }
        let Ok(body) = serde_json::to_vec(&batch) else {
            return;
        };
        let body = Bytes::from(body);
        for pause in RETRY_PAUSES {
            if self.post(body.clone()).await {
                self.dropped = (0, 0);
                return;
            }
            self.connection = None;
            tokio::time::sleep(pause).await;
        }
        self.dropped.0 += batch.len() as u64;
        self.dropped.1 += body.len() as u64;
    }

    /// One POST; true when the subscriber answered 2xx.
    async fn post(&mut self, body: Bytes) -> bool {
        if self.connection.as_ref().is_none_or(|c| c.is_closed()) {
            let Ok(stream) = self.connector.connect(self.port).await else {
                return false;
            };
            let Ok((sender, connection)) = http1::handshake(TokioIo::new(stream)).await else {
                return false;
            };
            tokio::task::spawn_local(async move {
                let _ = connection.await;
            });
            self.connection = Some(sender);
        }
        let Some(connection) = self.connection.as_mut() else {
            return false;
        };
        if connection.ready().await.is_err() {
            return false;
        }
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = hyper::Method::POST;
        let Ok(uri) = self.path.parse() else {
            return false;
        };
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(host) = HeaderValue::from_str(&format!("sandbox.localdomain:{}", self.port)) {
            headers.insert(HOST, host);
        }
        match connection.send_request(request).await {
            Ok(response) => {
                let ok = response.status().is_success();
                // Read the answer whole so the connection can carry the next batch.
                ok && response.into_body().collect().await.is_ok()
            }
            Err(_) => false,
        }
    }
}
