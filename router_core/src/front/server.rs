//! The front's HTTP/2 server: gRPC framing for Route, and the forwarder to the Python server.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::watch;

use super::route::Outcome;
use super::Front;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Out = BoxBody<Bytes, BoxError>;

const ROUTE_PATH: &str = "/modelyard.v1.Router/Route";
/// gRPC status codes the front answers with itself.
const UNAVAILABLE: u8 = 14;
const INTERNAL: u8 = 13;
const RESOURCE_EXHAUSTED: u8 = 8;

/// One unary gRPC answer: a data frame with the message, then `grpc-status: 0` trailers.
struct Unary {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for Unary {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

fn grpc_ok(message: &[u8]) -> Response<Out> {
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = Unary {
        data: Some(Bytes::from(framed)),
        trailers: Some(trailers),
    };
    let mut resp = Response::new(BoxBody::new(body));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    resp
}

/// A trailers-only gRPC error (`message` is plain ASCII, so it needs no percent-encoding).
fn grpc_error(code: u8, message: &str) -> Response<Out> {
    let mut resp = Response::new(BoxBody::new(
        Full::new(Bytes::new()).map_err(|e: Infallible| match e {}),
    ));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from(u16::from(code)));
    if let Ok(v) = HeaderValue::from_str(message) {
        h.insert("grpc-message", v);
    }
    resp
}

/// The message of a single uncompressed gRPC frame, or `None` (compressed, truncated, several).
fn unframe(b: &[u8]) -> Option<&[u8]> {
    let (&flag, rest) = b.split_first()?;
    if flag != 0 || rest.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    (rest.len() - 4 == len).then(|| &rest[4..])
}

/// The HTTP/2 connection to the Python server, opened on first use and again after it closed.
pub struct Upstream {
    path: String,
    conn: tokio::sync::Mutex<Option<SendRequest<Out>>>,
}

impl Upstream {
    async fn sender(&self) -> Result<SendRequest<Out>, BoxError> {
        let mut guard = self.conn.lock().await;
        if let Some(s) = guard.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let stream = UnixStream::connect(&self.path).await?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        *guard = Some(sender.clone());
        Ok(sender)
    }

    async fn forward(&self, req: Request<Out>) -> Response<Out> {
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        parts.uri = match format!("http://localhost{path}").parse() {
            Ok(u) => u,
            Err(_) => return grpc_error(INTERNAL, "front: bad request path"),
        };
        let req = Request::from_parts(parts, body);
        let mut sender = match self.sender().await {
            Ok(s) => s,
            Err(e) => {
                return grpc_error(
                    UNAVAILABLE,
                    &format!("front: the service is not reachable ({e})"),
                )
            }
        };
        if sender.ready().await.is_err() {
            return grpc_error(UNAVAILABLE, "front: the service connection closed; retry");
        }
        match sender.send_request(req).await {
            Ok(resp) => resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed()),
            Err(e) => grpc_error(
                UNAVAILABLE,
                &format!("front: forwarding failed ({e}); retry"),
            ),
        }
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn handle(
    front: Arc<Front>,
    upstream: Arc<Upstream>,
    req: Request<Incoming>,
) -> Response<Out> {
    if req.uri().path() != ROUTE_PATH {
        return upstream
            .forward(req.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed()))
            .await;
    }
    let started = Instant::now();
    let start_unix_ns = unix_ns();
    let cfg = front.config();
    // Named, so the slot is held until the answer is built.
    let Some(_slot) = InFlight::take(&front, cfg.max_concurrent_rpcs) else {
        let msg = "Concurrent RPC limit exceeded! (server.max_concurrent_rpcs)";
        return grpc_error(RESOURCE_EXHAUSTED, msg);
    };
    let (parts, body) = req.into_parts();
    // HPACK's accounting: name + value + 32 per entry, as grpc counts against max_metadata_size.
    let metadata: usize = parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 32)
        .sum();
    if metadata > cfg.max_metadata_bytes {
        let msg = format!(
            "metadata of {metadata} bytes is larger than server.max_metadata_bytes ({})",
            cfg.max_metadata_bytes
        );
        return grpc_error(RESOURCE_EXHAUSTED, &msg);
    }
    let max = cfg.max_message_bytes;
    let bytes = match http_body_util::Limited::new(body, max + 5).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            let msg =
                format!("Received message larger than max ({max} bytes: server.max_message_bytes)");
            return grpc_error(RESOURCE_EXHAUSTED, &msg);
        }
        Err(e) => {
            return grpc_error(
                INTERNAL,
                &format!("front: reading the request failed ({e})"),
            )
        }
    };
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let outcome = match unframe(&bytes) {
        // SQLite: on the store's writer thread, in batches; Redis: inline on the worker.
        Some(_) => front.route(auth.map(str::to_owned), bytes.slice(5..)).await,
        None => Ok((Outcome::Delegate("framing"), None)),
    };
    match outcome {
        Ok((Outcome::Answer(resp), routed)) => {
            if let Some(mut r) = routed {
                r.start_unix_ns = start_unix_ns;
                r.duration_ns = started.elapsed().as_nanos() as u64;
                r.traceparent = parts
                    .headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                front.record(r);
            }
            grpc_ok(&resp)
        }
        Ok((Outcome::Delegate(why), _)) => {
            front.delegated(why);
            let body = Full::new(bytes).map_err(|e: Infallible| match e {}).boxed();
            upstream.forward(Request::from_parts(parts, body)).await
        }
        Err(e) => {
            // A store or core error on the served path: the Python side reports such errors too,
            // so let it try (and answer with its own status) rather than invent one here.
            front.delegated("error");
            eprintln!("modelyard front: Route failed, forwarding to the service: {e}");
            let body = Full::new(bytes).map_err(|e: Infallible| match e {}).boxed();
            upstream.forward(Request::from_parts(parts, body)).await
        }
    }
}

/// One of the front's `max_concurrent_rpcs` Route slots, given back when dropped.
struct InFlight<'a>(&'a Front);

impl<'a> InFlight<'a> {
    fn take(front: &'a Front, max: usize) -> Option<Self> {
        let before = front.in_flight.fetch_add(1, Ordering::AcqRel);
        let slot = InFlight(front);
        (before < max).then_some(slot)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A started front: its bound port, and the handle that stops it.
pub struct Running {
    pub port: u16,
    runtime: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
    done: Option<std::sync::mpsc::Receiver<()>>,
}

impl Running {
    /// Stops accepting, lets calls in flight finish within `grace`, then ends the threads.
    pub fn stop(&mut self, grace: Duration) {
        let _ = self.stop.send(true);
        if let Some(done) = self.done.take() {
            let _ = done.recv_timeout(grace + Duration::from_secs(1));
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(grace);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(1));
    }
}

impl Front {
    /// Binds `listen` and serves on `threads` worker threads; forwards to the Unix socket `upstream`.
    pub fn start(
        self: &Arc<Self>,
        listen: &str,
        upstream: &str,
        threads: usize,
    ) -> Result<Running, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("modelyard-front")
            .enable_all()
            .build()
            .map_err(|e| format!("front runtime: {e}"))?;
        let listener = runtime.block_on(TcpListener::bind(listen)).map_err(|e| {
            format!("server.listen: cannot bind {listen}: {e}; choose a free HOST:PORT")
        })?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let upstream = Arc::new(Upstream {
            path: upstream.to_owned(),
            conn: tokio::sync::Mutex::new(None),
        });
        let front = Arc::clone(self);
        runtime.spawn(async move {
            serve(listener, front, upstream, stop_rx).await;
            let _ = done_tx.send(());
        });
        Ok(Running {
            port,
            runtime: Some(runtime),
            stop: stop_tx,
            done: Some(done_rx),
        })
    }
}

async fn serve(
    listener: TcpListener,
    front: Arc<Front>,
    upstream: Arc<Upstream>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (front, upstream, mut stop) = (Arc::clone(&front), Arc::clone(&upstream), stop.clone());
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let (front, upstream) = (Arc::clone(&front), Arc::clone(&upstream));
                async move { Ok::<_, Infallible>(handle(front, upstream, req).await) }
            });
            // Metadata limits are enforced per call (above for Route, by grpc.aio for the rest),
            // so they come back as gRPC statuses rather than HTTP 431.
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .max_header_list_size(1 << 20)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}
