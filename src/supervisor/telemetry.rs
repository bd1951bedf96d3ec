//! Telemetry and Logs API delivery: each subscriber gets a task that batches its records
//! (`maxItems`, `maxBytes`, `timeoutMs`) and sends each batch over one kept connection made
//! inside the environment's network namespace — a POST of a JSON array to an HTTP subscriber,
//! one JSON event per line to a TCP one — retrying a little and counting what it had to drop
//! (reported as `platform.logsDropped`). Records of the Init phase are kept and replayed to
//! subscribers that subscribe during Init.

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::netns::Connector;
use crate::api::telemetry::{Api, Buffering, Event, Record, Subscription, Transport, Types};

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
        // Nobody listens and nothing is kept for later: skip the timestamp on the hot path.
        if self.subscribers.is_empty() && self.init_records.is_none() {
            return;
        }
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
        transport: subscription.transport.clone(),
        link: None,
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
    transport: Transport,
    link: Option<Link>,
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
        let Some(body) = encode(&self.transport, &batch) else {
            return;
        };
        for pause in RETRY_PAUSES {
            if self.deliver(body.clone()).await {
                self.dropped = (0, 0);
                return;
            }
            self.link = None;
            tokio::time::sleep(pause).await;
        }
        self.dropped.0 += batch.len() as u64;
        self.dropped.1 += body.len() as u64;
    }

    /// One delivery attempt, connecting first when there is no usable connection; true when
    /// the subscriber took the batch.
    async fn deliver(&mut self, body: Bytes) -> bool {
        if self.link.as_ref().is_none_or(Link::is_closed) {
            self.link = self.open().await;
        }
        match (self.link.as_mut(), &self.transport) {
            (Some(Link::Http(connection)), Transport::Http { path }) => {
                post(connection, path, self.port, body).await
            }
            (Some(Link::Tcp(stream)), Transport::Tcp) => stream.write_all(&body).await.is_ok(),
            _ => false,
        }
    }

    async fn open(&self) -> Option<Link> {
        let stream = self.connector.connect(self.port).await.ok()?;
        if self.transport == Transport::Tcp {
            return Some(Link::Tcp(stream));
        }
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
        tokio::task::spawn_local(async move {
            let _ = connection.await;
        });
        Some(Link::Http(sender))
    }
}

/// A batch as `transport` carries it: a JSON array, or one JSON event per line.
fn encode(transport: &Transport, batch: &[Event]) -> Option<Bytes> {
    match transport {
        Transport::Http { .. } => serde_json::to_vec(batch).ok().map(Bytes::from),
        Transport::Tcp => {
            let mut lines = Vec::new();
            for event in batch {
                serde_json::to_writer(&mut lines, event).ok()?;
                lines.push(b'\n');
            }
            Some(Bytes::from(lines))
        }
    }
}

/// A subscriber's open connection.
enum Link {
    Http(SendRequest<Full<Bytes>>),
    Tcp(TcpStream),
}

impl Link {
    /// A TCP subscriber that went away shows when a write fails.
    fn is_closed(&self) -> bool {
        match self {
            Link::Http(connection) => connection.is_closed(),
            Link::Tcp(_) => false,
        }
    }
}

/// One POST; true when the subscriber answered 2xx.
async fn post(
    connection: &mut SendRequest<Full<Bytes>>,
    path: &str,
    port: u16,
    body: Bytes,
) -> bool {
    if connection.ready().await.is_err() {
        return false;
    }
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = hyper::Method::POST;
    let Ok(uri) = path.parse() else {
        return false;
    };
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(host) = HeaderValue::from_str(&format!("sandbox.localdomain:{port}")) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_subscribers_get_one_json_event_per_line() {
        let event = |id: &str| Event {
            time: "2022-10-12T00:00:15.064Z".into(),
            record: Record::End {
                request_id: id.into(),
            },
        };
        let batch = [event("a"), event("b")];
        let lines = encode(&Transport::Tcp, &batch).unwrap();
        let lines: Vec<serde_json::Value> = lines
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["type"], "platform.end");
        assert_eq!(lines[1]["record"]["requestId"], "b");
        let array = encode(&Transport::Http { path: "/".into() }, &batch).unwrap();
        let array: serde_json::Value = serde_json::from_slice(&array).unwrap();
        assert_eq!(array.as_array().unwrap().len(), 2);
    }
}
