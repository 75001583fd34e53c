//! How fast could Route be with the gRPC front in Rust? A measurement for a design decision, not
//! product code (bench/rust_front.py builds and drives it; see bench/README.md "Service load").
//!
//! `--mode echo`: tonic answering Route with an empty decision (the Rust gRPC floor, same messages).
//! `--mode route`: what the Python service's Route does on its hot path, in Rust: bearer key →
//! SHA-256 → tenant and scopes; the routing core (the same `router_core` crate); a budget
//! reservation in SQLite (WAL, synchronous=NORMAL) as one transaction — idempotency lookup, the
//! tenant's and key's counters of three windows read and checked, the decision row inserted with
//! a JSON payload, six counters upserted; the decision returned. Left out, and so not measured:
//! telemetry (spans, metrics, export), the job tracker and the usage mirror, config reload.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use _core::{Core, Request, Role};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use tonic::{transport::Server, Response, Status};

pub mod pb {
    tonic::include_proto!("modelyard.v1");
}
use pb::router_server::{Router, RouterServer};

struct Key {
    tenant: String,
    key_id: String,
    route: bool,
}

struct Front {
    echo: bool,
    core: Core,
    keys: HashMap<String, Key>,
    db: Mutex<Connection>,
    seed: AtomicU64,
}

const WINDOWS: [(i64, f64); 3] = [(1, 3_600.0), (2, 86_400.0), (3, 2_592_000.0)];

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn decision_id() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("os randomness");
    hex::encode(b)
}

// tonic::Status is what a handler returns; boxing it here would only be unboxed again.
#[allow(clippy::result_large_err)]
impl Front {
    fn principal(&self, meta: &tonic::metadata::MetadataMap) -> Result<&Key, Status> {
        let raw = meta
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization: send 'Bearer <api key>'"))?;
        let key = self
            .keys
            .get(&hex::encode(Sha256::digest(raw.as_bytes())))
            .ok_or_else(|| Status::unauthenticated("authorization: unknown API key"))?;
        if key.route {
            Ok(key)
        } else {
            Err(Status::permission_denied("the key lacks the 'route' scope"))
        }
    }

    /// One transaction: replay check, headroom read, decision insert, counter upserts.
    fn reserve(
        &self,
        key: &Key,
        req: &pb::RouteRequest,
        model: &str,
        estimate_micros: i64,
        payload: &str,
        now: f64,
    ) -> Result<Option<String>, rusqlite::Error> {
        let mut db = self.db.lock().expect("db lock");
        let tx = db.transaction()?;
        let seen: Option<String> = tx
            .query_row(
                "SELECT decision_id FROM decisions WHERE tenant = ?1 AND request_id = ?2",
                params![key.tenant, req.request_id],
                |r| r.get(0),
            )
            .optional()?;
        if seen.is_some() {
            return Ok(seen);
        }
        let subjects = [
            ("tenant", key.tenant.as_str()),
            ("key", key.key_id.as_str()),
        ];
        {
            let mut read = tx.prepare_cached(
                "SELECT spent + reserved FROM counters WHERE scope = ?1 AND subject = ?2 \
                 AND window = ?3 AND start = ?4",
            )?;
            for (scope, subject) in subjects {
                for (w, len) in WINDOWS {
                    let start = (now / len).floor() * len;
                    let used: Option<i64> = read
                        .query_row(params![scope, subject, w, start], |r| r.get(0))
                        .optional()?;
                    if used.unwrap_or(0) + estimate_micros > i64::MAX / 2 {
                        return Ok(None); // never for these budgets; the check is the work
                    }
                }
            }
        }
        let id = decision_id();
        tx.prepare_cached(
            "INSERT INTO decisions (decision_id, request_id, tenant, key_id, job_id, model, \
             estimate_micros, created_at, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            id,
            req.request_id,
            key.tenant,
            key.key_id,
            req.job_id,
            model,
            estimate_micros,
            now,
            payload
        ])?;
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO counters (scope, subject, window, start, spent, reserved) \
                 VALUES (?1, ?2, ?3, ?4, 0, ?5) ON CONFLICT (scope, subject, window, start) \
                 DO UPDATE SET reserved = reserved + excluded.reserved",
            )?;
            for (scope, subject) in subjects {
                for (w, len) in WINDOWS {
                    let start = (now / len).floor() * len;
                    up.execute(params![scope, subject, w, start, estimate_micros])?;
                }
            }
        }
        tx.commit()?;
        Ok(Some(id))
    }
}

#[tonic::async_trait]
impl Router for Front {
    async fn route(
        &self,
        request: tonic::Request<pb::RouteRequest>,
    ) -> Result<Response<pb::RouteDecision>, Status> {
        if self.echo {
            return Ok(Response::new(pb::RouteDecision::default()));
        }
        let key = self.principal(request.metadata())?;
        let req = request.get_ref();
        let task = req.task.clone().unwrap_or_default();
        let now = now_s();
        let role = Role::from_number(i64::from(task.role))
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut r = Request::new(role, &task.task_class, now);
        r.est_input_tokens = u64::try_from(task.est_input_tokens).unwrap_or(0);
        r.est_output_tokens = u64::try_from(task.est_output_tokens).unwrap_or(0);
        r.capabilities = task.required_capabilities.clone();
        if let Some(c) = &req.constraints {
            r.allowed = c.allowed_models.clone();
            r.denied = c.denied_models.clone();
            r.provenance = c.required_provenance.clone();
        }
        r.attempt = u32::try_from(req.attempt.max(1)).unwrap_or(1);
        r.failed_models = req.failed_models.clone();
        r.explore = req.explore.unwrap_or(true);
        r.seed = self.seed.fetch_add(1, Ordering::Relaxed);
        let d = self
            .core
            .route(&r)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let model = d
            .model()
            .ok_or_else(|| Status::failed_precondition("no eligible model"))?
            .to_owned();
        let estimate_micros = (d.expected_cost_usd * 1e6).ceil().max(1.0) as i64;
        let payload = serde_json::json!({
            "model": model, "cost_usd": d.expected_cost_usd,
            "success_probability": d.success_probability, "latency_ms": d.latency_ms,
            "est_input_tokens": r.est_input_tokens, "est_output_tokens": r.est_output_tokens,
            "attempt": r.attempt, "exploration": d.exploration,
        })
        .to_string();
        let id = self
            .reserve(key, req, &model, estimate_micros, &payload, now)
            .map_err(|e| Status::unavailable(format!("store: {e}")))?
            .ok_or_else(|| Status::resource_exhausted("budget"))?;
        Ok(Response::new(pb::RouteDecision {
            decision_id: id,
            model: Some(pb::ModelRef {
                model_id: model,
                ..Default::default()
            }),
            expected: Some(pb::Expectation {
                cost_usd: d.expected_cost_usd,
                success_probability: d.success_probability,
                latency_ms: d.latency_ms,
                cost_per_success_usd: d.cost_per_success_usd,
            }),
            reserved_usd: estimate_micros as f64 / 1e6,
            exploration: d.exploration,
            reason: "rust front bench".to_owned(),
            ..Default::default()
        }))
    }

    type DispatchStream = tokio_stream::wrappers::ReceiverStream<Result<pb::DispatchEvent, Status>>;

    async fn dispatch(
        &self,
        _: tonic::Request<pb::DispatchRequest>,
    ) -> Result<Response<Self::DispatchStream>, Status> {
        Err(Status::unimplemented("not measured"))
    }

    async fn report_outcome(
        &self,
        _: tonic::Request<pb::OutcomeReport>,
    ) -> Result<Response<pb::OutcomeAck>, Status> {
        Err(Status::unimplemented("not measured"))
    }

    async fn complete_job(
        &self,
        _: tonic::Request<pb::JobOutcome>,
    ) -> Result<Response<pb::JobSummary>, Status> {
        Err(Status::unimplemented("not measured"))
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn open_db(path: &str) -> Connection {
    let db = Connection::open(path).expect("open sqlite");
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS decisions (decision_id TEXT PRIMARY KEY, request_id TEXT,
           tenant TEXT, key_id TEXT, job_id TEXT, model TEXT, estimate_micros INTEGER,
           created_at REAL, payload TEXT);
         CREATE UNIQUE INDEX IF NOT EXISTS decisions_request ON decisions (tenant, request_id);
         CREATE TABLE IF NOT EXISTS counters (scope TEXT, subject TEXT, window INTEGER, start REAL,
           spent INTEGER, reserved INTEGER, PRIMARY KEY (scope, subject, window, start));",
    )
    .expect("schema");
    db
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:50071".into());
    let echo = arg(&args, "--mode").as_deref() == Some("echo");
    let catalog = std::fs::read_to_string(arg(&args, "--catalog").ok_or("--catalog FILE")?)?;
    let keys_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        arg(&args, "--keys").ok_or("--keys FILE")?,
    )?)?;
    let db_path = arg(&args, "--db").ok_or("--db FILE")?;
    let mut keys = HashMap::new();
    for k in keys_json.as_array().ok_or("keys: a JSON array")? {
        let scopes: Vec<&str> = k["scopes"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
            .unwrap_or_default();
        keys.insert(
            k["sha256"].as_str().unwrap_or_default().to_owned(),
            Key {
                tenant: k["tenant"].as_str().unwrap_or_default().to_owned(),
                key_id: k["key_id"].as_str().unwrap_or_default().to_owned(),
                route: scopes.iter().any(|s| *s == "route" || *s == "admin"),
            },
        );
    }
    let front = Front {
        echo,
        core: Core::new(&catalog)?,
        keys,
        db: Mutex::new(open_db(&db_path)),
        seed: AtomicU64::new(1),
    };
    println!("listening on {listen}");
    Server::builder()
        .add_service(RouterServer::new(front))
        .serve(listen.parse()?)
        .await?;
    Ok(())
}
