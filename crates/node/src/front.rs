//! The node's listener: its own accept loop in front of jsonrpsee, so that no client, however many
//! connections it opens or however slowly it sends, can lock the others out.
//!
//! - **Room is always kept for a new client.** Every accepted connection is admitted. When its
//!   address already holds [`FrontLimits::max_connections_per_address`] connections, the one of
//!   that address that has been quiet the longest (no byte read or written) is closed to make room;
//!   when the node holds [`FrontLimits::max_connections`] in all, the quietest connection of the
//!   address holding the most is closed. On a real network an attacker thus only ever evicts its
//!   own connections; on loopback, where every client shares one address, a client that keeps
//!   talking (a wallet polling, a dashboard receiving block notifications) outlives idle or
//!   trickling connections, which are the ones evicted.
//! - **Headers have a deadline on every request**, not only the first: hyper's header read timeout
//!   ([`crate::ReadDeadlines::headers`]) runs whenever a keep-alive connection waits for its next
//!   request, so slow headers (or an idle keep-alive connection) are closed after it. Bodies have
//!   their own deadline in [`crate::http`].
//! - WebSocket connections stay under the same accounting after their upgrade: the socket wrapper
//!   ([`TrackedIo`]) records activity and closes itself when evicted, whoever holds it.
//!
//! The limits are [`FrontLimits`] (`NodeConfig::limits`); figures in `docs/node.md` ("Limits under
//! load").

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};

/// The node's connection, subscription and heavy-read limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontLimits {
    /// Most connections (HTTP keep-alive and WebSocket) held at once; a new one beyond it closes
    /// the quietest connection of the busiest address.
    pub max_connections: u32,
    /// Most connections one client address holds at once; a new one beyond it closes that
    /// address's quietest connection.
    pub max_connections_per_address: u32,
    /// Most subscriptions one WebSocket connection holds.
    pub max_subscriptions_per_connection: u32,
    /// Most subscriptions held in all; beyond it a subscription is refused (-32005) until others
    /// end.
    pub max_subscriptions: u32,
    /// Most block-range reads (`getBlockRange`, `paystreams_getBlockRange`) running at once; the
    /// others wait in a queue.
    pub max_range_reads: u32,
    /// Most block-range reads waiting for their turn; beyond it a range read is refused at once
    /// (-32005, retry later).
    pub range_read_queue: u32,
}

impl FrontLimits {
    /// 512 connections, 128 per address, 32 subscriptions per connection and 1024 in all, 2 range
    /// reads at a time with 32 waiting.
    pub const DEFAULT: Self = Self {
        max_connections: 512,
        max_connections_per_address: 128,
        max_subscriptions_per_connection: 32,
        max_subscriptions: 1024,
        max_range_reads: 2,
        range_read_queue: 32,
    };

    /// Refuses limits the node cannot run with.
    ///
    /// # Errors
    /// A zero limit, or a per-address limit above the total.
    pub fn check(&self) -> anyhow::Result<()> {
        let all = [
            ("max_connections", self.max_connections),
            ("max_connections_per_address", self.max_connections_per_address),
            ("max_subscriptions_per_connection", self.max_subscriptions_per_connection),
            ("max_subscriptions", self.max_subscriptions),
            ("max_range_reads", self.max_range_reads),
        ];
        if let Some((name, _)) = all.iter().find(|(_, value)| *value == 0) {
            anyhow::bail!("the limit {name} must be positive (for the CLI: --{})", name.replace('_', "-"));
        }
        if self.max_connections_per_address > self.max_connections {
            anyhow::bail!(
                "the per-address connection limit ({}) exceeds the total ({}); lower --max-connections-per-address \
                 or raise --max-connections",
                self.max_connections_per_address,
                self.max_connections
            );
        }
        Ok(())
    }
}

impl Default for FrontLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What one connection shares with the registry.
struct ConnectionState {
    /// Milliseconds since the registry's start at the last byte read or written.
    last_active_ms: AtomicU64,
    /// Milliseconds since the registry's start at the accept.
    accepted_ms: u64,
    /// Requests received whole (headers and body) and not yet answered.
    answering: AtomicU64,
    /// Requests whose headers have arrived, since the accept.
    requests: AtomicU64,
    evicted: AtomicBool,
    /// The tasks reading and writing (a WebSocket's reader and writer may be different tasks).
    wakers: Mutex<[Option<Waker>; 2]>,
}

impl ConnectionState {
    fn evict(&self) {
        self.evicted.store(true, Ordering::SeqCst);
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(PoisonError::into_inner));
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }

    /// Registers the task to wake on eviction (slot 0 reads, 1 writes); `true` if evicted.
    fn register(&self, slot: usize, cx: &Context<'_>) -> bool {
        if self.evicted.load(Ordering::SeqCst) {
            return true;
        }
        {
            let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
            match &mut wakers[slot] {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                other => *other = Some(cx.waker().clone()),
            }
        }
        self.evicted.load(Ordering::SeqCst)
    }
}

struct Held {
    address: IpAddr,
    state: Arc<ConnectionState>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    connections: HashMap<u64, Held>,
    per_address: HashMap<IpAddr, u32>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Held> {
        let held = self.connections.remove(&id)?;
        if let Some(count) = self.per_address.get_mut(&held.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_address.remove(&held.address);
            }
        }
        Some(held)
    }

    /// The connection of `address` to close first: the one quiet the longest in the first
    /// non-empty class of: connections with nothing to protect them (a request still trickling
    /// in, or idle since its last exchange); new ones (younger than [`YOUNG_MS`]) still to send
    /// their first request; connections that have lived [`KEPT_MS`] and were active within the
    /// last [`KEPT_MS`] (a client that keeps talking, a subscriber receiving notifications);
    /// connections answering a request they have received whole.
    fn quietest_of(&self, address: IpAddr, now_ms: u64) -> Option<u64> {
        self.connections
            .iter()
            .filter(|(_, held)| held.address == address)
            .min_by_key(|(id, held)| {
                let state = &held.state;
                let age = now_ms.saturating_sub(state.accepted_ms);
                let last_active = state.last_active_ms.load(Ordering::Relaxed);
                let class = if state.answering.load(Ordering::Relaxed) > 0 {
                    3
                } else if age >= KEPT_MS && now_ms.saturating_sub(last_active) < KEPT_MS {
                    2
                } else if age < YOUNG_MS && state.requests.load(Ordering::Relaxed) == 0 {
                    1
                } else {
                    0
                };
                (class, last_active, **id)
            })
            .map(|(id, _)| *id)
    }
}

/// The connections the node holds, by client address.
pub struct Registry {
    limits: FrontLimits,
    start: Instant,
    table: Mutex<Table>,
    evicted: AtomicU64,
}

/// Counts for tests and `/health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FrontStats {
    /// Connections held now.
    pub connections: u64,
    /// Connections closed to make room since the start.
    pub evicted: u64,
}

impl Registry {
    #[must_use]
    pub fn new(limits: FrontLimits) -> Arc<Self> {
        Arc::new(Self { limits, start: Instant::now(), table: Mutex::default(), evicted: AtomicU64::new(0) })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    #[must_use]
    pub fn stats(&self) -> FrontStats {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        FrontStats {
            connections: u64::try_from(table.connections.len()).unwrap_or(u64::MAX),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }

    /// Admits a connection from `address`, closing another first if a limit is reached; with the
    /// connection, whether one was closed (the node is under pressure).
    fn admit(self: &Arc<Self>, address: IpAddr, socket: TcpStream) -> (TrackedIo, bool) {
        let now_ms = self.now_ms();
        let state = Arc::new(ConnectionState {
            last_active_ms: AtomicU64::new(now_ms),
            accepted_ms: now_ms,
            answering: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            wakers: Mutex::default(),
        });
        let mut victims = Vec::new();
        let pressed;
        let id = {
            let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
            let of_address = table.per_address.get(&address).copied().unwrap_or(0);
            if of_address >= self.limits.max_connections_per_address {
                victims.extend(table.quietest_of(address, now_ms));
            } else if u64::try_from(table.connections.len()).unwrap_or(u64::MAX)
                >= u64::from(self.limits.max_connections)
            {
                let busiest = table.per_address.iter().max_by_key(|(_, count)| **count).map(|(a, _)| *a);
                victims.extend(busiest.and_then(|busiest| table.quietest_of(busiest, now_ms)));
            }
            let victims: Vec<Held> = victims.iter().filter_map(|id| table.remove(*id)).collect();
            pressed = !victims.is_empty();
            let id = table.next_id;
            table.next_id += 1;
            table.connections.insert(id, Held { address, state: Arc::clone(&state) });
            *table.per_address.entry(address).or_default() += 1;
            drop(table);
            for victim in victims {
                self.evicted.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(address = %victim.address, "connection closed to make room for a new one");
                victim.state.evict();
            }
            id
        };
        (TrackedIo { socket, state, registry: Arc::clone(self), id, first_read: None }, pressed)
    }
}

/// A connection's socket, recording activity and closing when evicted (its reads and writes fail).
pub struct TrackedIo {
    socket: TcpStream,
    state: Arc<ConnectionState>,
    registry: Arc<Registry>,
    id: u64,
    /// Told when the connection is first read from.
    first_read: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TrackedIo {
    fn touch(&self) {
        self.state.last_active_ms.store(self.registry.now_ms(), Ordering::Relaxed);
    }
}

fn evicted_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed to make room for a new client")
}

impl Drop for TrackedIo {
    fn drop(&mut self) {
        self.registry.table.lock().unwrap_or_else(PoisonError::into_inner).remove(self.id);
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.state.register(0, cx) {
            return Poll::Ready(Err(evicted_error()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.socket).poll_read(cx, buf);
        if let Some(first_read) = this.first_read.take() {
            let _ = first_read.send(());
        }
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.touch();
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.state.register(1, cx) {
            return Poll::Ready(Err(evicted_error()));
        }
        let polled = Pin::new(&mut this.socket).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.state.register(1, cx) {
            return Poll::Ready(Err(evicted_error()));
        }
        let polled = Pin::new(&mut this.socket).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }
}

/// How long, under pressure, the accept loop waits for a new connection's first read.
const FIRST_READ_WAIT: Duration = Duration::from_millis(10);

/// How long a new connection is spared from eviction while others can be closed instead, so a
/// client has time to send its request during a flood of new connections.
const YOUNG_MS: u64 = 250;

/// How long a connection must have lived, and how recently it must have been active, to be
/// spared as a client that keeps talking.
const KEPT_MS: u64 = 1000;

/// One request on a connection: counted in [`ConnectionState::answering`] from the moment it has
/// been received whole until its answer is ready (the last clone dropped).
#[derive(Clone)]
struct Answering(Arc<AnsweringInner>);

struct AnsweringInner {
    state: Arc<ConnectionState>,
    received: AtomicBool,
}

impl Answering {
    fn new(state: Arc<ConnectionState>) -> Self {
        Self(Arc::new(AnsweringInner { state, received: AtomicBool::new(false) }))
    }

    fn received(&self) {
        if !self.0.received.swap(true, Ordering::Relaxed) {
            self.0.state.answering.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for AnsweringInner {
    fn drop(&mut self) {
        if *self.received.get_mut() {
            self.state.answering.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A request body that marks its request received once its last byte has arrived.
struct ReceivedBody {
    inner: hyper::body::Incoming,
    answering: Answering,
}

impl hyper::body::Body for ReceivedBody {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || this.inner.is_end_stream() {
            this.answering.received();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as being answered until it is sent.
struct Answered<B> {
    body: B,
    _answering: Answering,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Answered<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Most HTTP/2 streams one connection may have open (each is a request in flight).
const MAX_HTTP2_STREAMS: u32 = 8;

/// Accepts connections until `stop` ends, serving each with a service made by `make_service`
/// (jsonrpsee's tower service with the node's layers) under hyper, with WebSocket upgrades.
pub async fn serve<F, S, B>(
    listener: TcpListener,
    registry: Arc<Registry>,
    make_service: F,
    header_deadline: Duration,
    stop: jsonrpsee::server::StopHandle,
) where
    F: Fn() -> S + Send + 'static,
    S: tower::Service<jsonrpsee::server::HttpRequest, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let shutdown = stop.clone().shutdown();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, remote): (TcpStream, SocketAddr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted: the
                // connections held are still served; try again shortly.
                tracing::debug!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let (mut io, pressed) = registry.admit(remote.ip(), socket);
        let (first_read, read) = tokio::sync::oneshot::channel();
        io.first_read = Some(first_read);
        let state = Arc::clone(&io.state);
        let service = make_service();
        let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            state.requests.fetch_add(1, Ordering::Relaxed);
            let answering = Answering::new(Arc::clone(&state));
            if hyper::body::Body::is_end_stream(request.body()) {
                answering.received();
            }
            let (parts, inner) = request.into_parts();
            let body = jsonrpsee::server::HttpBody::new(ReceivedBody { inner, answering: answering.clone() });
            // jsonrpsee's service is always ready (tower's poll_ready is a formality for it).
            let answer = tower::Service::call(&mut service.clone(), http::Request::from_parts(parts, body));
            // Still answering until the answer's last byte is written.
            async move { answer.await.map(|response| response.map(|body| Answered { body, _answering: answering })) }
        });
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_deadline)
                .keep_alive(true);
            builder.http2().max_concurrent_streams(MAX_HTTP2_STREAMS);
            let connection = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(io), service);
            tokio::pin!(connection);
            let stopped = stop.shutdown();
            tokio::pin!(stopped);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = &mut stopped => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%remote, error = %e, "connection ended");
            }
        });
        // The new connection's task runs next (tokio's LIFO slot): its request, if already
        // sent, is read before a burst of further accepts could push it out. Under pressure (a
        // connection was just closed to make room) the next accept waits for that first read, a
        // few milliseconds at most, so a flood of new connections cannot close a new client's
        // connection before its request, already sent, has been read.
        tokio::task::yield_now().await;
        if pressed {
            let _ = tokio::time::timeout(FIRST_READ_WAIT, read).await;
        }
    }
}
