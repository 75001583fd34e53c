//! A native gRPC load generator for `bench/load/service_load.py --native-client`: the same Route
//! requests as the Python load generator, sent over one HTTP/2 connection by `--concurrency`
//! workers on one thread, so the figure is the server's and not the Python client's.
//!
//! grpc_load --addr 127.0.0.1:PORT --method /modelyard.v1.Router/Route --token KEY --tag TAG
//!           --requests N --concurrency C
//! prints {"requests", "errors", "rps", "p50_ms", "p99_ms"} (the Python `Summary` fields).

use std::time::{Duration, Instant};

use _core::front::pb::{RouteRequest, TaskProfile};
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;

const ROLE_EXECUTOR: i32 = 2;
const TASK_CLASSES: usize = 20;

struct Args {
    addr: String,
    method: String,
    token: String,
    tag: String,
    requests: usize,
    concurrency: usize,
}

fn args() -> Args {
    let mut a = Args {
        addr: String::new(),
        method: "/modelyard.v1.Router/Route".into(),
        token: String::new(),
        tag: "native".into(),
        requests: 1000,
        concurrency: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = value,
            "--method" => a.method = value,
            "--token" => a.token = value,
            "--tag" => a.tag = value,
            "--requests" => a.requests = value.parse().expect("--requests: a count"),
            "--concurrency" => a.concurrency = value.parse().expect("--concurrency: a count"),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!a.addr.is_empty(), "--addr is required");
    a
}

/// The request `service_load.route_request(tag, i)` builds, gRPC-framed.
fn route_request(tag: &str, i: usize) -> Bytes {
    let msg = RouteRequest {
        request_id: format!("{tag}-{i}"),
        job_id: format!("{tag}-job-{}", i % 64),
        task: Some(TaskProfile {
            role: ROLE_EXECUTOR,
            task_class: format!("bench-class-{}", i % TASK_CLASSES),
            est_input_tokens: 12_000,
            est_output_tokens: 800,
            ..TaskProfile::default()
        }),
        ..RouteRequest::default()
    };
    let mut out = BytesMut::with_capacity(5 + msg.encoded_len());
    out.put_u8(0);
    out.put_u32(msg.encoded_len() as u32);
    msg.encode(&mut out).expect("the buffer has room");
    out.freeze()
}

/// One call; Ok(()) when the server answered with grpc-status 0.
async fn call(sender: &mut SendRequest<Full<Bytes>>, a: &Args, i: usize) -> Result<(), String> {
    let req = Request::post(format!("http://{}{}", a.addr, a.method))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {}", a.token))
        .body(Full::new(route_request(&a.tag, i)))
        .map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.headers().get("grpc-status").cloned();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let status = status.or_else(|| body.trailers().and_then(|t| t.get("grpc-status").cloned()));
    match status.as_ref().map(hyper::http::HeaderValue::as_bytes) {
        Some(b"0") => Ok(()),
        other => Err(format!("grpc-status {other:?}")),
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1);
    sorted[idx]
}

fn main() {
    let a = std::rc::Rc::new(args());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let stream = tokio::net::TcpStream::connect(&a.addr)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", a.addr));
        stream.set_nodelay(true).expect("nodelay");
        let (sender, conn) = Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
        tokio::task::spawn_local(conn);
        let next = std::rc::Rc::new(std::cell::Cell::new(0usize));
        let start = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..a.concurrency {
            let (a, next, mut sender) = (a.clone(), next.clone(), sender.clone());
            workers.push(tokio::task::spawn_local(async move {
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                loop {
                    let i = next.get();
                    if i >= a.requests {
                        break;
                    }
                    next.set(i + 1);
                    let t = Instant::now();
                    match tokio::time::timeout(Duration::from_secs(10), call(&mut sender, &a, i))
                        .await
                    {
                        Ok(Ok(())) => lat.push(t.elapsed().as_secs_f64() * 1e3),
                        Ok(Err(e)) => {
                            errors += 1;
                            if errors == 1 {
                                eprintln!("call {i}: {e}");
                            }
                        }
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            }));
        }
        let (mut lat, mut errors) = (Vec::new(), 0);
        for w in workers {
            let (l, e) = w.await.expect("a worker");
            lat.extend(l);
            errors += e;
        }
        let elapsed = start.elapsed().as_secs_f64();
        lat.sort_by(f64::total_cmp);
        println!(
            r#"{{"requests": {}, "errors": {}, "rps": {:.3}, "p50_ms": {:.3}, "p99_ms": {:.3}}}"#,
            lat.len(),
            errors,
            lat.len() as f64 / elapsed,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    });
}
