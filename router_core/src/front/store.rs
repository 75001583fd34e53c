//! The SQLite store's Route operations in Rust, on the same file, schema and semantics as
//! `service/modelyard/store/_sqlite_ops.py` (the reference): a reservation (replay check,
//! counters read and checked, the decision row (with the windows it holds) and the counters written) commits inside
//! `BEGIN IMMEDIATE … COMMIT` at `synchronous=NORMAL`, as the Python store commits reservations:
//! alone when the front is idle, else in a savepoint of a batch the `Writer` commits at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};

/// Schema version this build reads and writes (`_sqlite_schema.py` SCHEMA_VERSION).
pub const SCHEMA_VERSION: i64 = 4;

pub const WINDOWS: [i64; 3] = [1, 2, 3];
// `usage` and `insert_reservation` name the three windows in their SQL.
const _: () = assert!(WINDOWS[0] == 1 && WINDOWS[1] == 2 && WINDOWS[2] == 3);
pub const WINDOW_NAMES: [&str; 3] = ["hour", "day", "month"];

pub fn window_name(w: i64) -> &'static str {
    WINDOW_NAMES[(w - 1).clamp(0, 2) as usize]
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (start, reset) in epoch seconds of the UTC hour, day or calendar month containing `now`.
pub fn window_bounds(window: i64, now: f64) -> (i64, i64) {
    let t = now.floor() as i64;
    match window {
        1 => {
            let s = t.div_euclid(3600) * 3600;
            (s, s + 3600)
        }
        2 => {
            let s = t.div_euclid(86_400) * 86_400;
            (s, s + 86_400)
        }
        _ => {
            let (y, m, _) = civil_from_days(t.div_euclid(86_400));
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (
                days_from_civil(y, m, 1) * 86_400,
                days_from_civil(ny, nm, 1) * 86_400,
            )
        }
    }
}

/// "%Y-%m-%dT%H:%M:%SZ" of epoch seconds, UTC.
pub fn iso_utc(ts: i64) -> String {
    let (y, m, d) = civil_from_days(ts.div_euclid(86_400));
    let s = ts.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// One counter as Route reads it.
#[derive(Debug, Clone)]
pub struct Usage {
    pub scope: &'static str,
    pub subject: String,
    pub window: i64,
    pub resets_at: i64,
    pub spent_micros: i64,
    pub reserved_micros: i64,
}

/// The decision row a reservation inserts.
pub struct NewDecision<'a> {
    pub request_id: &'a str,
    pub decision_id: &'a str,
    pub tenant: &'a str,
    pub key_id: &'a str,
    pub job_id: &'a str,
    pub model: &'a str,
    pub role: i64,
    pub task_class: &'a str,
    pub estimate_micros: i64,
    pub created_at: f64,
    pub expires_at: f64,
    pub payload: &'a [u8],
}

pub fn open(path: &str, busy_timeout_ms: u64) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_millis(busy_timeout_ms))?;
    // Reservations only: a process crash loses nothing, a power loss may drop the newest whole
    // (see relaxed_sync in _sqlite_ops.py). The Python store's settles stay FULL.
    // Checkpoints stay off the request path: the Python store's checkpointer thread runs them
    // (PASSIVE, every 250 ms) for this connection's writes too; this is only the backstop
    // (sqlite.py BACKSTOP_PAGES).
    conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=20000;")?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != SCHEMA_VERSION {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "{path}: schema version {version}, this build needs {SCHEMA_VERSION} (the Python store creates it)"
        )));
    }
    Ok(conn)
}

/// Called once the batch a Route's reservation was in has committed (`None`) or failed.
pub type Reply = Box<dyn FnOnce(Option<String>) + Send>;

/// One Route's work on the store: runs inside the batch's transaction (`None` when the batch
/// could not begin) and says whether to keep what it wrote.
pub type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Reply) + Send>;

/// Most Routes one transaction commits.
const MAX_BATCH: usize = 64;

/// The front's SQLite connection, owned by one writer thread that commits reservations in
/// batches (group commit). A Route's reservation runs in a savepoint of the batch's
/// transaction, so one failing leaves the others; every Route queued while the writer was busy
/// (committing, mostly: ~55 of ~100 µs of a lone reservation here) joins the next batch, and
/// each is answered only once its batch has committed, as before.
pub struct Writer {
    conn: Arc<Mutex<Connection>>,
    jobs: mpsc::Sender<Job>,
    /// Jobs submitted and not yet answered.
    queued: Arc<AtomicUsize>,
}

impl Writer {
    pub fn start(conn: Connection) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let conn = Arc::new(Mutex::new(conn));
        let queued = Arc::new(AtomicUsize::new(0));
        let (c, q) = (Arc::clone(&conn), Arc::clone(&queued));
        std::thread::Builder::new()
            .name("modelyard-front-sqlite".into())
            .spawn(move || write_batches(&c, &rx, &q))?;
        Ok(Self { conn, jobs, queued })
    }

    /// Runs `f` in a transaction of its own on the caller's thread, when nothing is queued and
    /// the connection is free (a lone Route: no hand-off to the writer); `None` otherwise.
    /// `f` says whether to keep (commit) what it wrote.
    pub fn try_inline<R>(
        &self,
        f: impl FnOnce(Option<&Connection>) -> (bool, R),
    ) -> Option<Result<R, String>> {
        if self.queued.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let conn = self.conn.try_lock()?;
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            return Some(Err(format!(
                "the SQLite store could not begin a transaction: {e}"
            )));
        }
        let (keep, out) = f(Some(&conn));
        let end = if keep { "COMMIT" } else { "ROLLBACK" };
        if let Err(e) = conn.execute_batch(end) {
            let _ = conn.execute_batch("ROLLBACK");
            if keep {
                return Some(Err(format!("the reservation did not commit: {e}")));
            }
        }
        Some(Ok(out))
    }

    /// Queues a Route's work for the next batch.
    pub fn submit(&self, job: Job) -> Result<(), String> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.jobs.send(job).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            "the front's SQLite writer has stopped".to_owned()
        })
    }
}

fn write_batches(conn: &Mutex<Connection>, rx: &mpsc::Receiver<Job>, queued: &AtomicUsize) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let n = batch.len();
        let mut conn = conn.lock();
        let began = conn.execute_batch("BEGIN IMMEDIATE");
        let mut replies: Vec<(bool, Reply)> = Vec::with_capacity(n);
        for job in batch {
            replies.push(if began.is_ok() {
                run_in_savepoint(&mut conn, job)
            } else {
                guarded(job, None)
            });
        }
        let commit = match began {
            Err(e) => Err(e.to_string()),
            Ok(()) => conn.execute_batch("COMMIT").map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                e.to_string()
            }),
        };
        drop(conn);
        queued.fetch_sub(n, Ordering::SeqCst);
        for (kept, reply) in replies {
            reply(match &commit {
                Err(why) if kept => Some(format!("the reservation's batch did not commit: {why}")),
                _ => None,
            });
        }
    }
}

/// Runs `job`; a panic in one Route must not stop the writer: its reply is dropped (the Route is
/// then forwarded to the service) and nothing of it is kept.
fn guarded(job: Job, db: Option<&Connection>) -> (bool, Reply) {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(db)))
        .unwrap_or_else(|_| (false, Box::new(|_| {})))
}

/// Runs `job` in a savepoint, released when it keeps its writes and rolled back otherwise.
fn run_in_savepoint(conn: &mut Connection, job: Job) -> (bool, Reply) {
    let Ok(sp) = conn.savepoint() else {
        return guarded(job, None);
    };
    let (keep, reply) = guarded(job, Some(&sp));
    if keep {
        if let Err(e) = sp.commit() {
            let why = e.to_string();
            return (
                false,
                Box::new(move |_| reply(Some(format!("the reservation did not save: {why}")))),
            );
        }
    }
    (keep, reply)
}

pub fn find_request(
    tx: &Connection,
    request_id: &str,
    tenant: &str,
) -> rusqlite::Result<Option<Vec<u8>>> {
    tx.prepare_cached("SELECT payload FROM decisions WHERE tenant = ?1 AND request_id = ?2")?
        .query_row(params![tenant, request_id], |r| r.get(0))
        .optional()
}

/// The tenant's and the key's counters of the three windows containing `now`, in that order.
/// One statement of six primary-key lookups (a statement per counter cost a bind, step and reset
/// each; a row-value `IN` would scan the table).
pub fn usage(
    tx: &Connection,
    tenant: &str,
    key_id: &str,
    now: f64,
) -> rusqlite::Result<Vec<Usage>> {
    let mut stmt = tx.prepare_cached(
        "SELECT 0, spent_micros, reserved_micros FROM counters \
           WHERE scope = 'tenant' AND subject = ?1 AND win = 1 AND window_start = ?3 \
         UNION ALL SELECT 1, spent_micros, reserved_micros FROM counters \
           WHERE scope = 'tenant' AND subject = ?1 AND win = 2 AND window_start = ?4 \
         UNION ALL SELECT 2, spent_micros, reserved_micros FROM counters \
           WHERE scope = 'tenant' AND subject = ?1 AND win = 3 AND window_start = ?5 \
         UNION ALL SELECT 3, spent_micros, reserved_micros FROM counters \
           WHERE scope = 'key' AND subject = ?2 AND win = 1 AND window_start = ?3 \
         UNION ALL SELECT 4, spent_micros, reserved_micros FROM counters \
           WHERE scope = 'key' AND subject = ?2 AND win = 2 AND window_start = ?4 \
         UNION ALL SELECT 5, spent_micros, reserved_micros FROM counters \
           WHERE scope = 'key' AND subject = ?2 AND win = 3 AND window_start = ?5",
    )?;
    let bounds = WINDOWS.map(|w| window_bounds(w, now));
    let mut found = [(0i64, 0i64); 6];
    let mut rows = stmt.query(params![
        tenant,
        key_id,
        bounds[0].0,
        bounds[1].0,
        bounds[2].0
    ])?;
    while let Some(r) = rows.next()? {
        let i: usize = r.get(0)?;
        found[i] = (r.get(1)?, r.get(2)?);
    }
    let mut out = Vec::with_capacity(6);
    for (k, (scope, subject)) in [("tenant", tenant), ("key", key_id)]
        .into_iter()
        .enumerate()
    {
        for (j, w) in WINDOWS.into_iter().enumerate() {
            let (spent, reserved) = found[k * 3 + j];
            out.push(Usage {
                scope,
                subject: subject.to_owned(),
                window: w,
                resets_at: bounds[j].1,
                spent_micros: spent,
                reserved_micros: reserved,
            });
        }
    }
    Ok(out)
}

/// Inserts the decision and holds its estimate on the tenant's and key's counters of every window;
/// the decision's `held` column says which window starts (`_sqlite_schema.held_text`), so a settle
/// or an expiry releases exactly those counters.
pub fn insert_reservation(tx: &Connection, d: &NewDecision<'_>, now: f64) -> rusqlite::Result<()> {
    let starts = WINDOWS.map(|w| (w, window_bounds(w, now).0));
    let held = starts
        .iter()
        .map(|(w, start)| format!("{w}:{start}"))
        .collect::<Vec<_>>()
        .join(",");
    tx.prepare_cached(
        "INSERT INTO decisions (request_id, decision_id, tenant, key_id, job_id, model, role, \
         task_class, estimate_micros, created_at, expires_at, payload, held) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        d.request_id,
        d.decision_id,
        d.tenant,
        d.key_id,
        d.job_id,
        d.model,
        d.role,
        d.task_class,
        d.estimate_micros,
        d.created_at,
        d.expires_at,
        d.payload,
        held
    ])?;
    // All six counters in one statement (see `usage`).
    tx.prepare_cached(
        "INSERT INTO counters (scope, subject, win, window_start, reserved_micros) VALUES \
         ('tenant', ?1, 1, ?3, ?6), ('tenant', ?1, 2, ?4, ?6), ('tenant', ?1, 3, ?5, ?6), \
         ('key', ?2, 1, ?3, ?6), ('key', ?2, 2, ?4, ?6), ('key', ?2, 3, ?5, ?6) \
         ON CONFLICT DO UPDATE SET reserved_micros = reserved_micros + excluded.reserved_micros",
    )?
    .execute(params![
        d.tenant,
        d.key_id,
        starts[0].1,
        starts[1].1,
        starts[2].1,
        d.estimate_micros
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_iso_dates_match_the_python_store() {
        // 2026-02-14T13:45:10Z
        let t = 1_771_076_710.5;
        assert_eq!(iso_utc(t as i64), "2026-02-14T13:45:10Z");
        let (hs, hr) = window_bounds(1, t);
        assert_eq!(
            (iso_utc(hs), iso_utc(hr)),
            ("2026-02-14T13:00:00Z".into(), "2026-02-14T14:00:00Z".into())
        );
        let (ds, dr) = window_bounds(2, t);
        assert_eq!(
            (iso_utc(ds), iso_utc(dr)),
            ("2026-02-14T00:00:00Z".into(), "2026-02-15T00:00:00Z".into())
        );
        let (ms, mr) = window_bounds(3, t);
        assert_eq!(
            (iso_utc(ms), iso_utc(mr)),
            ("2026-02-01T00:00:00Z".into(), "2026-03-01T00:00:00Z".into())
        );
        // December rolls into the next year; a leap February ends on the 29th.
        let dec = window_bounds(3, 1_797_811_200.0); // 2026-12-23
        assert_eq!(
            (iso_utc(dec.0), iso_utc(dec.1)),
            ("2026-12-01T00:00:00Z".into(), "2027-01-01T00:00:00Z".into())
        );
        let feb = window_bounds(3, 1_709_251_199.0); // 2024-02-29T23:59:59Z
        assert_eq!(iso_utc(feb.1), "2024-03-01T00:00:00Z");
    }

    /// `insert_reservation` holds the estimate on the six counters and `usage` reads them back in
    /// order (tenant then key; hour, day, month), each window by its own start.
    #[test]
    fn reservations_hold_and_usage_reads_the_six_counters_of_their_windows() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE decisions (request_id, decision_id, tenant, key_id, job_id, model, role, \
               task_class, estimate_micros, created_at, expires_at, payload, held);
             CREATE TABLE counters (scope TEXT NOT NULL, subject TEXT NOT NULL, win INTEGER NOT NULL,
               window_start INTEGER NOT NULL, spent_micros INTEGER NOT NULL DEFAULT 0,
               reserved_micros INTEGER NOT NULL DEFAULT 0,
               PRIMARY KEY (scope, subject, win, window_start)) WITHOUT ROWID;",
        )
        .unwrap();
        let t = 1_771_076_710.5; // 2026-02-14T13:45:10Z
        let reserve = |key_id: &str, estimate_micros: i64, now: f64| {
            let d = NewDecision {
                request_id: "r",
                decision_id: "d",
                tenant: "acme",
                key_id,
                job_id: "j",
                model: "m",
                role: 2,
                task_class: "c",
                estimate_micros,
                created_at: now,
                expires_at: now + 600.0,
                payload: b"p",
            };
            insert_reservation(&db, &d, now).unwrap();
        };
        reserve("k1", 100, t);
        reserve("k1", 20, t + 60.0);
        reserve("k2", 50, t + 3600.0); // the next hour, the same day and month
        db.execute(
            "UPDATE counters SET spent_micros = 7 WHERE scope = 'key' AND subject = 'k1' AND win = 2",
            [],
        )
        .unwrap();
        let seen = |key_id: &str, now: f64| -> Vec<(&'static str, String, i64, i64, i64, i64)> {
            usage(&db, "acme", key_id, now)
                .unwrap()
                .into_iter()
                .map(|u| {
                    let resets = u.resets_at;
                    (
                        u.scope,
                        u.subject,
                        u.window,
                        resets,
                        u.spent_micros,
                        u.reserved_micros,
                    )
                })
                .collect()
        };
        let resets = WINDOWS.map(|w| window_bounds(w, t).1);
        let next = WINDOWS.map(|w| window_bounds(w, t + 3600.0).1);
        assert_eq!(
            seen("k1", t),
            vec![
                ("tenant", "acme".into(), 1, resets[0], 0, 120),
                ("tenant", "acme".into(), 2, resets[1], 0, 170),
                ("tenant", "acme".into(), 3, resets[2], 0, 170),
                ("key", "k1".into(), 1, resets[0], 0, 120),
                ("key", "k1".into(), 2, resets[1], 7, 120),
                ("key", "k1".into(), 3, resets[2], 0, 120),
            ]
        );
        assert_eq!(
            seen("k2", t + 3600.0),
            vec![
                ("tenant", "acme".into(), 1, next[0], 0, 50),
                ("tenant", "acme".into(), 2, next[1], 0, 170),
                ("tenant", "acme".into(), 3, next[2], 0, 170),
                ("key", "k2".into(), 1, next[0], 0, 50),
                ("key", "k2".into(), 2, next[1], 0, 50),
                ("key", "k2".into(), 3, next[2], 0, 50),
            ]
        );
        let fresh = seen("k3", t); // a key with no counters yet reads zeros; its tenant's do not
        assert!(fresh[3..]
            .iter()
            .all(|u| u.1 == "k3" && u.4 == 0 && u.5 == 0));
        assert_eq!(fresh[..3], seen("k1", t)[..3]);
    }

    fn temp_db(name: &str) -> (std::path::PathBuf, Connection) {
        let path =
            std::env::temp_dir().join(format!("myr-writer-{}-{name}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x INTEGER PRIMARY KEY);")
            .unwrap();
        (path, conn)
    }

    fn count(path: &std::path::Path, sql: &str) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }

    /// A job that inserts `x`, keeps it unless told not to, and reports its batch's verdict.
    fn insert(x: i64, keep: bool, done: mpsc::Sender<(i64, Option<String>)>) -> Job {
        Box::new(move |db| {
            let db = db.expect("the batch began");
            db.execute("INSERT INTO t VALUES (?1)", [x]).unwrap();
            let reply: Reply = Box::new(move |failed| done.send((x, failed)).unwrap());
            (keep, reply)
        })
    }

    #[test]
    fn the_writer_commits_batches_and_rolls_back_only_what_a_route_did_not_keep() {
        let (path, conn) = temp_db("batches");
        let w = Arc::new(Writer::start(conn).unwrap());
        let (done, answers) = mpsc::channel();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (w, done) = (Arc::clone(&w), done.clone());
                s.spawn(move || {
                    for i in 0..50 {
                        let x = t * 100 + i;
                        w.submit(insert(x, x % 5 != 0, done.clone())).unwrap();
                    }
                });
            }
        });
        let got: Vec<(i64, Option<String>)> = answers.iter().take(200).collect();
        assert!(got.iter().all(|(_, failed)| failed.is_none()));
        // Every answer came after its batch committed: all kept rows are there, and only they.
        assert_eq!(count(&path, "SELECT count(*) FROM t"), 160);
        assert_eq!(count(&path, "SELECT count(*) FROM t WHERE x % 5 = 0"), 0);
        // Idle: a Route runs inline, in a transaction of its own.
        let out = w.try_inline(|db| {
            db.unwrap()
                .execute("INSERT INTO t VALUES (999)", [])
                .unwrap();
            (true, "inline")
        });
        assert_eq!(out, Some(Ok("inline")));
        assert_eq!(count(&path, "SELECT count(*) FROM t WHERE x = 999"), 1);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_panicking_route_or_a_failing_statement_does_not_stop_the_writer() {
        let (path, conn) = temp_db("faults");
        let w = Writer::start(conn).unwrap();
        let (done, answers) = mpsc::channel();
        w.submit(Box::new(|_| panic!("a bug in one Route")))
            .unwrap();
        // A Route whose statement fails (the key is taken) keeps nothing; the others stand.
        w.submit(insert(7, true, done.clone())).unwrap();
        w.submit(Box::new(move |db| {
            let failed = db.unwrap().execute("INSERT INTO t VALUES (7)", []).is_err();
            let reply: Reply =
                Box::new(move |_| done.send((-7, failed.then(String::new))).unwrap());
            (false, reply)
        }))
        .unwrap();
        let got: Vec<(i64, Option<String>)> = answers.iter().take(2).collect();
        assert!(
            got.contains(&(7, None)) && got.contains(&(-7, Some(String::new()))),
            "{got:?}"
        );
        assert_eq!(count(&path, "SELECT count(*) FROM t"), 1);
        let _ = std::fs::remove_file(&path);
    }
}
