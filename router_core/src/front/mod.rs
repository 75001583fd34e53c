//! The Rust gRPC front (`server.front: rust`, docs/DESIGN.md "Service: the Route hot path in
//! Rust"). It owns the public listening socket: `modelyard.v1.Router/Route` is served here, on
//! tokio threads that never take the GIL, over the same `Core`s, SQLite file and job tracker as
//! the Python service; every other call, and every Route it does not serve itself (see
//! route.rs), is forwarded unchanged over HTTP/2 to the Python grpc.aio server on a private Unix
//! socket, which answers it as it would without the front.

pub mod config;
pub mod pb;
pub mod redis;
pub mod route;
mod server;
pub mod spans;
pub mod store;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::jobs::JobTracker;
use crate::Core;
use config::FrontConfig;
use route::Routed;

pub use server::Running;

/// Served Routes waiting for the Python side to record their telemetry (bounded: past this many,
/// the oldest are dropped and counted).
pub const ROUTED_QUEUE_MAX: usize = 65_536;

/// Where the front reserves: the same store the Python service uses.
pub enum Store {
    Sqlite(store::Writer),
    Redis(Box<redis::RedisStore>),
}

/// The store as `front.py` describes it (the Redis URL resolved from its environment variable,
/// and `lua/reserve.lua`'s source, so both sides run the one script).
#[derive(serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StoreSpec {
    Sqlite {
        path: String,
    },
    Redis {
        url: String,
        prefix: String,
        reserve_script: String,
    },
}

pub struct Front {
    config: RwLock<Arc<FrontConfig>>,
    cores: RwLock<HashMap<String, Arc<Core>>>,
    pub jobs: Arc<JobTracker>,
    store: Store,
    seed: AtomicU64,
    /// Routes served here and forwarded to Python, by reason.
    pub served: AtomicU64,
    delegated: Mutex<HashMap<&'static str, u64>>,
    routed: Mutex<VecDeque<Routed>>,
    pub routed_dropped: AtomicU64,
    /// How Python wants the served Routes' telemetry (`summarize_routed`); None: not set.
    telemetry: RwLock<Option<Arc<spans::Spec>>>,
    /// Routes being read or answered right now (server.max_concurrent_rpcs).
    in_flight: std::sync::atomic::AtomicUsize,
}

impl Front {
    pub fn new(
        config: FrontConfig,
        spec: StoreSpec,
        jobs: Arc<JobTracker>,
    ) -> Result<Self, String> {
        let store = match spec {
            StoreSpec::Sqlite { path } => Store::Sqlite(
                store::Writer::start(
                    store::open(&path, 5_000).map_err(|e| format!("store.sqlite.path: {e}"))?,
                )
                .map_err(|e| format!("front: cannot start the SQLite writer: {e}"))?,
            ),
            StoreSpec::Redis {
                url,
                prefix,
                reserve_script,
            } => Store::Redis(Box::new(redis::RedisStore::new(
                &url,
                &prefix,
                &reserve_script,
            )?)),
        };
        Ok(Self {
            config: RwLock::new(Arc::new(config)),
            cores: RwLock::new(HashMap::new()),
            jobs,
            store,
            seed: AtomicU64::new(0),
            served: AtomicU64::new(0),
            delegated: Mutex::new(HashMap::new()),
            routed: Mutex::new(VecDeque::new()),
            routed_dropped: AtomicU64::new(0),
            telemetry: RwLock::new(None),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    pub fn config(&self) -> Arc<FrontConfig> {
        self.config.read().clone()
    }

    /// Swaps the config whole (a reload); Routes in flight finish on the one they started with.
    pub fn set_config(&self, config: FrontConfig) {
        *self.config.write() = Arc::new(config);
    }

    /// The core that learns for `name` ("" = shared, else a tenant's own).
    pub fn set_core(&self, name: &str, core: Arc<Core>) {
        self.cores.write().insert(name.to_owned(), core);
    }

    fn next_seed(&self) -> u64 {
        // The Python side seeds with (routing.seed << 32) ^ its own counter; the top bit keeps the
        // front's seeds apart from it.
        (1 << 31) | (self.seed.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn delegated(&self, why: &'static str) {
        *self.delegated.lock().entry(why).or_default() += 1;
    }

    /// Routes forwarded to Python since start, by reason.
    pub fn delegations(&self) -> HashMap<&'static str, u64> {
        self.delegated.lock().clone()
    }

    fn record(&self, r: Routed) {
        self.served.fetch_add(1, Ordering::Relaxed);
        let mut q = self.routed.lock();
        if q.len() >= ROUTED_QUEUE_MAX {
            q.pop_front();
            self.routed_dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(r);
    }

    /// The Routes served since the last call, oldest first (for stats and telemetry).
    pub fn drain_routed(&self) -> Vec<Routed> {
        self.routed.lock().drain(..).collect()
    }

    /// What Python records of the served Routes' telemetry (roles' names, the span encoding).
    pub fn set_telemetry(&self, spec: Option<spans::Spec>) {
        *self.telemetry.write() = spec.map(Arc::new);
    }

    /// The Routes served since the last call, summed for stats and metrics, their spans encoded.
    pub fn drain_summary(&self) -> spans::Summary {
        let routed = self.drain_routed();
        let spec = self.telemetry.read().clone();
        spans::summarize(&routed, spec.as_deref())
    }
}
