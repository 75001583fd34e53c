//! The Redis store's Route operations in Rust: the counters read with one pipelined round trip and
//! the reservation by the same versioned script as `store/redis_store.py` (`lua/reserve.lua`),
//! with the same keys (`_redis_codec.py`) and record fields, so the Python side settles, expires
//! and reads what the front reserved. A minimal RESP2 client over blocking TCP connections (one
//! per Route in flight, kept for reuse) with short timeouts: any error drops the connection and
//! the Route is forwarded to Python, whose store retries, reconnects and applies the fail-open
//! policy.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::store::{window_bounds, NewDecision, Usage, WINDOWS};

/// `_redis_codec.RETENTION_S`: counters outlive their window, decisions their expiry, this long.
pub const RETENTION_S: i64 = 35 * 86_400;
const TIMEOUT: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const DOWN_BACKOFF: Duration = Duration::from_secs(1);
/// Idle connections kept (one per front thread is what Routes use; the rest absorb bursts).
const MAX_IDLE: usize = 4;

#[derive(Debug)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            Reply::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }
}

struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn send(&mut self, cmds: &[Vec<Vec<u8>>]) -> Result<Vec<Reply>, String> {
        let mut out = Vec::with_capacity(256);
        for cmd in cmds {
            out.extend_from_slice(format!("*{}\r\n", cmd.len()).as_bytes());
            for arg in cmd {
                out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                out.extend_from_slice(arg);
                out.extend_from_slice(b"\r\n");
            }
        }
        self.reader
            .get_mut()
            .write_all(&out)
            .map_err(|e| e.to_string())?;
        cmds.iter().map(|_| self.read()).collect()
    }

    fn line(&mut self) -> Result<String, String> {
        let mut s = String::new();
        self.reader.read_line(&mut s).map_err(|e| e.to_string())?;
        if !s.ends_with("\r\n") {
            return Err("redis: connection closed".into());
        }
        s.truncate(s.len() - 2);
        Ok(s)
    }

    fn read(&mut self) -> Result<Reply, String> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(1.min(line.len()));
        let n = || {
            rest.parse::<i64>()
                .map_err(|e| format!("redis: bad reply {line:?}: {e}"))
        };
        Ok(match kind {
            "+" => Reply::Simple(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Int(n()?),
            "$" => {
                let len = n()?;
                if len < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut buf = vec![0; len as usize + 2];
                    self.reader
                        .read_exact(&mut buf)
                        .map_err(|e| e.to_string())?;
                    buf.truncate(len as usize);
                    Reply::Bulk(Some(buf))
                }
            }
            "*" => {
                let len = n()?;
                let mut items = Vec::with_capacity(len.max(0) as usize);
                for _ in 0..len.max(0) {
                    items.push(self.read()?);
                }
                Reply::Array(items)
            }
            _ => return Err(format!("redis: unknown reply {line:?}")),
        })
    }
}

/// Where and how to connect: redis://[user:password@]host[:port][/db].
#[derive(Debug, Clone)]
struct Target {
    addr: String,
    auth: Option<(Option<String>, String)>,
    db: Option<String>,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url.strip_prefix("redis://").ok_or_else(|| {
        "store.redis.url_env: the Rust front connects to redis:// URLs only (no TLS); \
         use server.front: python for rediss://"
            .to_owned()
    })?;
    let (hostpart, db) = match rest.split_once('/') {
        Some((h, d)) if !d.is_empty() => (h, Some(d.split('?').next().unwrap_or(d).to_owned())),
        Some((h, _)) => (h, None),
        None => (rest, None),
    };
    let (auth, host) = match hostpart.rsplit_once('@') {
        Some((cred, host)) => {
            let auth = match cred.split_once(':') {
                Some((u, p)) => (
                    if u.is_empty() {
                        None
                    } else {
                        Some(u.to_owned())
                    },
                    p.to_owned(),
                ),
                None => (None, cred.to_owned()),
            };
            (Some(auth), host)
        }
        None => (None, hostpart),
    };
    let addr = if host.contains(':') && !host.ends_with(']') {
        host.to_owned()
    } else {
        format!("{host}:6379")
    };
    Ok(Target { addr, auth, db })
}

fn b(s: impl AsRef<[u8]>) -> Vec<u8> {
    s.as_ref().to_vec()
}

pub struct RedisStore {
    target: Target,
    prefix: String,
    /// Idle connections; a Route takes one for its round trip (or opens one), so Routes on
    /// different front threads reach Redis at once instead of queueing for one connection.
    idle: Mutex<Vec<Conn>>,
    script: String,
    sha: Mutex<Option<String>>,
    /// (tenant, key_id) already in the tenants index and key owner hash (redis_store.py `_known`).
    known: Mutex<HashSet<(String, String)>>,
    /// After a failure, Routes go straight to Python (which has the retry and fail-open policy)
    /// until this instant, instead of each waiting for a Redis that is down.
    down_until: Mutex<Option<Instant>>,
}

/// What the reserve script answered.
pub enum Reserved {
    Done,
    Replay,
    OverLimit,
}

/// A float as Python's repr writes it (what `float()` reads back).
fn repr(x: f64) -> String {
    serde_json::Number::from_f64(x).map_or_else(|| "0.0".into(), |n| n.to_string())
}

impl RedisStore {
    pub fn new(url: &str, prefix: &str, script: &str) -> Result<Self, String> {
        Ok(Self {
            target: parse_url(url)?,
            prefix: prefix.to_owned(),
            idle: Mutex::new(Vec::new()),
            script: script.to_owned(),
            sha: Mutex::new(None),
            known: Mutex::new(HashSet::new()),
            down_until: Mutex::new(None),
        })
    }

    fn tag(&self, tenant: &str) -> String {
        format!("{{{}:t:{tenant}}}", self.prefix)
    }

    fn counter(&self, tenant: &str, scope: &str, subject: &str, window: i64, start: i64) -> String {
        format!("{}:c:{scope}:{subject}:{window}:{start}", self.tag(tenant))
    }

    fn connect(&self) -> Result<Conn, String> {
        let addr = self
            .target
            .addr
            .to_socket_addrs()
            .map_err(|e| format!("redis: {e}"))?
            .next()
            .ok_or_else(|| format!("redis: {} resolves to nothing", self.target.addr))?;
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| format!("redis: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut conn = Conn {
            reader: BufReader::new(stream),
        };
        let mut setup = Vec::new();
        if let Some((user, pass)) = &self.target.auth {
            setup.push(match user {
                Some(u) => vec![b("AUTH"), b(u), b(pass)],
                None => vec![b("AUTH"), b(pass)],
            });
        }
        if let Some(db) = &self.target.db {
            setup.push(vec![b("SELECT"), b(db)]);
        }
        for r in conn.send(&setup)? {
            if let Reply::Error(e) = r {
                return Err(format!("redis: {e}"));
            }
        }
        Ok(conn)
    }

    /// Runs `cmds` pipelined on an idle connection (or a new one); a connection that failed is
    /// dropped, and the Routes of the next `DOWN_BACKOFF` go to Python.
    fn send(&self, cmds: &[Vec<Vec<u8>>]) -> Result<Vec<Reply>, String> {
        if self.down_until.lock().is_some_and(|t| Instant::now() < t) {
            return Err("redis: down a moment ago; the service handles it".into());
        }
        let idle = self.idle.lock().pop();
        let result = idle.map_or_else(|| self.connect(), Ok).and_then(|mut c| {
            let r = c.send(cmds)?;
            let mut idle = self.idle.lock();
            if idle.len() < MAX_IDLE {
                idle.push(c);
            }
            Ok(r)
        });
        if result.is_err() {
            *self.down_until.lock() = Some(Instant::now() + DOWN_BACKOFF);
        }
        result
    }

    /// The tenant's and the key's counters of the three windows containing `now`, in that order.
    pub fn usage(&self, tenant: &str, key_id: &str, now: f64) -> Result<Vec<Usage>, String> {
        let mut cmds = Vec::with_capacity(6);
        let mut rows = Vec::with_capacity(6);
        for (scope, subject) in [("tenant", tenant), ("key", key_id)] {
            for w in WINDOWS {
                let (start, reset) = window_bounds(w, now);
                cmds.push(vec![
                    b("HMGET"),
                    b(self.counter(tenant, scope, subject, w, start)),
                    b("spent"),
                    b("reserved"),
                ]);
                rows.push((scope, subject, w, reset));
            }
        }
        let replies = self.send(&cmds)?;
        rows.into_iter()
            .zip(replies)
            .map(|((scope, subject, window, reset), r)| {
                let Reply::Array(v) = r else {
                    return Err(format!("redis: HMGET answered {r:?}"));
                };
                let get = |i: usize| v.get(i).and_then(Reply::int).unwrap_or(0);
                Ok(Usage {
                    scope,
                    subject: subject.to_owned(),
                    window,
                    resets_at: reset,
                    spent_micros: get(0),
                    reserved_micros: get(1),
                })
            })
            .collect()
    }

    /// reserve.lua for the decision row `r` (written as `_redis_codec.record_fields` writes it), with the hard limits `limits` ((position in the tenant-then-key window order,
    /// hard micro-dollars)); see redis_store.py `reserve`.
    pub fn reserve(
        &self,
        r: &NewDecision<'_>,
        limits: &[(usize, i64)],
        now: f64,
    ) -> Result<Reserved, String> {
        self.index(r.tenant, r.key_id)?;
        let tag = self.tag(r.tenant);
        let mut counters = Vec::with_capacity(6);
        let mut ttls = Vec::with_capacity(6);
        for (scope, subject) in [("tenant", r.tenant), ("key", r.key_id)] {
            for w in WINDOWS {
                let (start, reset) = window_bounds(w, now);
                counters.push(self.counter(r.tenant, scope, subject, w, start));
                ttls.push((reset - now.floor() as i64).max(1) + RETENTION_S);
            }
        }
        let keys = [
            format!("{tag}:req:{}", r.request_id),
            format!("{tag}:dec:{}", r.decision_id),
            format!("{tag}:open"),
            format!("{tag}:job:{}", r.job_id),
        ];
        let record_ttl = ((r.expires_at - now).ceil() as i64).max(1) + RETENTION_S;
        let mut args: Vec<Vec<u8>> = vec![
            b(r.decision_id),
            b(r.estimate_micros.to_string()),
            b(repr(r.expires_at)),
            b(record_ttl.to_string()),
            b(counters.len().to_string()),
        ];
        args.extend(ttls.iter().map(|t| b(t.to_string())));
        args.push(b(limits.len().to_string()));
        for (pos, hard) in limits {
            args.push(b((pos + 1).to_string()));
            args.push(b(hard.to_string()));
        }
        let holds = counters.join("\n");
        let fields: [(&str, Vec<u8>); 23] = [
            ("request_id", b(r.request_id)),
            ("decision_id", b(r.decision_id)),
            ("tenant", b(r.tenant)),
            ("key_id", b(r.key_id)),
            ("job_id", b(r.job_id)),
            ("model", b(r.model)),
            ("role", b(r.role.to_string())),
            ("task_class", b(r.task_class)),
            ("estimate_micros", b(r.estimate_micros.to_string())),
            ("created_at", b(repr(r.created_at))),
            ("expires_at", b(repr(r.expires_at))),
            ("payload", r.payload.to_vec()),
            ("settled", b("0")),
            ("expired", b("0")),
            ("charged_micros", b("0")),
            ("status", b("0")),
            ("model_used", b("")),
            ("input_tokens", b("0")),
            ("cached_input_tokens", b("0")),
            ("output_tokens", b("0")),
            ("latency_ms", b("0")),
            ("settled_at", b("")),
            ("holds", b(holds)),
        ];
        for (name, value) in fields {
            args.push(b(name));
            args.push(value);
        }
        let nkeys = keys.len() + counters.len();
        let mut tail: Vec<Vec<u8>> = vec![b(nkeys.to_string())];
        tail.extend(keys.iter().map(b));
        tail.extend(counters.iter().map(b));
        tail.extend(args);
        let out = self.eval(tail)?;
        let Reply::Array(v) = out else {
            return Err(format!("redis: reserve answered {out:?}"));
        };
        match v.first().and_then(Reply::int) {
            Some(0) => Ok(Reserved::Done),
            Some(1) => Ok(Reserved::Replay),
            Some(2) => Ok(Reserved::OverLimit),
            _ => Err(format!("redis: reserve answered {v:?}")),
        }
    }

    /// EVALSHA, loading the script on NOSCRIPT (a restarted or failed-over Redis).
    fn eval(&self, tail: Vec<Vec<u8>>) -> Result<Reply, String> {
        for _ in 0..2 {
            let cached = self.sha.lock().clone();
            let sha = if let Some(s) = cached {
                s
            } else {
                let loaded = self.send(&[vec![b("SCRIPT"), b("LOAD"), b(&self.script)]])?;
                let Some(Reply::Bulk(Some(s))) = loaded.into_iter().next() else {
                    return Err("redis: SCRIPT LOAD failed".into());
                };
                let s = String::from_utf8_lossy(&s).into_owned();
                *self.sha.lock() = Some(s.clone());
                s
            };
            let mut cmd = vec![b("EVALSHA"), b(&sha)];
            cmd.extend(tail.iter().cloned());
            match self.send(&[cmd])?.into_iter().next() {
                Some(Reply::Error(e)) if e.starts_with("NOSCRIPT") => *self.sha.lock() = None,
                Some(Reply::Error(e)) => return Err(format!("redis: {e}")),
                Some(r) => return Ok(r),
                None => return Err("redis: no reply".into()),
            }
        }
        Err("redis: the reserve script could not be loaded".into())
    }

    /// Adds the tenant to the index expiry sweeps and the key to the owner hash, once per process.
    fn index(&self, tenant: &str, key_id: &str) -> Result<(), String> {
        let pair = (tenant.to_owned(), key_id.to_owned());
        if self.known.lock().contains(&pair) {
            return Ok(());
        }
        let replies = self.send(&[
            vec![b("SADD"), b(format!("{}:tenants", self.prefix)), b(tenant)],
            vec![
                b("HSET"),
                b(format!("{}:keyowner", self.prefix)),
                b(key_id),
                b(tenant),
            ],
        ])?;
        if let Some(Reply::Error(e)) = replies.iter().find(|r| matches!(r, Reply::Error(_))) {
            return Err(format!("redis: {e}"));
        }
        self.known.lock().insert(pair);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_redis_py_reads_them() {
        let t = parse_url("redis://127.0.0.1:6390/2").unwrap();
        assert_eq!(
            (t.addr.as_str(), t.db.as_deref(), t.auth.is_none()),
            ("127.0.0.1:6390", Some("2"), true)
        );
        let t = parse_url("redis://:secret@cache").unwrap();
        assert_eq!(t.addr, "cache:6379");
        assert_eq!(t.auth, Some((None, "secret".to_owned())));
        let t = parse_url("redis://app:pw@cache:7000/").unwrap();
        assert_eq!((t.addr.as_str(), t.db), ("cache:7000", None));
        assert_eq!(t.auth, Some((Some("app".to_owned()), "pw".to_owned())));
        assert!(parse_url("rediss://cache:6380")
            .unwrap_err()
            .contains("server.front: python"));
    }
}
