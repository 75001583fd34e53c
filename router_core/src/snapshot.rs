//! Versioned snapshot bytes of the learned sums: `MAGIC`, a little-endian u32 version, then a
//! bincode body. Breakers and drift windows are per process and left out.
//!
//! Version 2 replaced v1's absolute token statistics with log-ratios (tokens actual/estimated,
//! cost billed/list). v1 snapshots still restore: success, latency and plain token sums carry
//! over; the ratios start empty (v1 never saw estimates).
//!
//! Version 3 keeps v2's layout and adds the retry arms (role | `RETRY`) and the per-role hardness
//! arms (model `HARDNESS`); v2 bodies restore unchanged (they have neither).
//!
//! Version 4 keeps the layout and adds the effort-bucketed retry arms (role | `RETRY` |
//! `EFFORT_HIGH` or `EFFORT_LOW`); retry arms' cost ratio now holds the retries' efforts. v3 and
//! v2 bodies restore unchanged (their retry arms just have no effort yet).
//!
//! Merge adds sums after aligning epochs to the later t0 (the earlier side is multiplied by
//! exp(−λ·Δt0)), so it is commutative and associative (up to float rounding), and merging into
//! an empty core is exactly a restore.

use bincode::Options as _;
use serde::{Deserialize, Serialize};

use crate::arm::{ArmKey, ArmTable, ALL_CLASSES, EFFORT_HIGH, EFFORT_LOW, RETRY};
use crate::error::{CoreError, Result};
use crate::stats::{LatencySums, Sums};

const MAGIC: &[u8; 8] = b"MYRCORE\0";
const VERSION: u32 = 4;
/// Refuse bodies that claim absurd lengths rather than allocating for them.
const MAX_BODY: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Body<S = Sums> {
    half_life_s: f64,
    t0: Option<f64>,
    last_now: f64,
    arms: Vec<SnapArm<S>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SnapArm<S = Sums> {
    model: String,
    role: u8,
    /// `None` for the pooled levels.
    class: Option<String>,
    sums: S,
}

/// Version 1 sums (absolute log-token statistics).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct SumsV1 {
    successes: f64,
    failures: f64,
    tokens_in: [f64; 3],
    tokens_out: [f64; 3],
    input_plain: f64,
    cached_plain: f64,
    output_plain: f64,
    latency: LatencySums,
}

impl From<SumsV1> for Sums {
    fn from(v: SumsV1) -> Self {
        Self {
            successes: v.successes,
            failures: v.failures,
            tokens_w: v.tokens_in[0],
            input_plain: v.input_plain,
            cached_plain: v.cached_plain,
            output_plain: v.output_plain,
            latency: v.latency,
            ..Sums::default()
        }
    }
}

/// Encodes the table; arms are sorted by names so equal states give equal bytes.
pub fn encode(table: &ArmTable, half_life_s: f64, last_now: f64) -> Result<Vec<u8>> {
    let mut arms: Vec<SnapArm> = table
        .iter()
        .map(|(k, a)| SnapArm {
            model: table.models.name(k.model).to_owned(),
            role: k.role,
            class: (k.class != ALL_CLASSES).then(|| table.classes.name(k.class).to_owned()),
            sums: a.sums,
        })
        .collect();
    arms.sort_by(|a, b| (&a.model, a.role, &a.class).cmp(&(&b.model, b.role, &b.class)));
    let body = Body {
        half_life_s,
        t0: table.t0,
        last_now,
        arms,
    };
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_le_bytes());
    let bytes = bincode::serialize(&body).map_err(|e| CoreError::field("snapshot", e))?;
    out.extend_from_slice(&bytes);
    Ok(out)
}

pub struct Decoded(Body);

pub fn decode(data: &[u8]) -> Result<Decoded> {
    if data.len() < 12 || &data[..8] != MAGIC {
        return Err(CoreError::field(
            "snapshot",
            "not a modelyard core snapshot (bad magic)",
        ));
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&data[8..12]);
    let version = u32::from_le_bytes(v);
    let opts = bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(MAX_BODY);
    let corrupt = |e: bincode::Error| CoreError::field("snapshot", format!("corrupt body: {e}"));
    let body: Body = match version {
        // v3 and v4 have v2's layout; v3 adds retry arms (role | RETRY) and the hardness arms,
        // v4 the effort-bucketed retry arms.
        VERSION | 3 | 2 => opts.deserialize(&data[12..]).map_err(corrupt)?,
        1 => {
            let v1: Body<SumsV1> = opts.deserialize(&data[12..]).map_err(corrupt)?;
            Body {
                half_life_s: v1.half_life_s,
                t0: v1.t0,
                last_now: v1.last_now,
                arms: v1
                    .arms
                    .into_iter()
                    .map(|a| SnapArm {
                        model: a.model,
                        role: a.role,
                        class: a.class,
                        sums: a.sums.into(),
                    })
                    .collect(),
            }
        }
        _ => {
            return Err(CoreError::field(
                "snapshot.version",
                format!("unsupported version {version}, expected {VERSION} (or 3, 2, 1)"),
            ))
        }
    };
    if body.t0.is_some_and(|t| !t.is_finite())
        || !body.last_now.is_finite() && body.last_now != f64::NEG_INFINITY
    {
        return Err(CoreError::field("snapshot.t0", "must be finite"));
    }
    for (i, a) in body.arms.iter().enumerate() {
        let effort = a.role & (EFFORT_HIGH | EFFORT_LOW);
        let retry_ok = version >= 3 || a.role & RETRY == 0;
        let effort_ok = effort == 0
            || version >= 4 && a.role & RETRY != 0 && effort != EFFORT_HIGH | EFFORT_LOW;
        if a.role & !(RETRY | EFFORT_HIGH | EFFORT_LOW) > 6 || !retry_ok || !effort_ok {
            return Err(CoreError::field(
                format!("snapshot.arms[{i}].role"),
                format!(
                    "must be 0..6 (v3: optionally | 128 for retry arms; v4: retry arms \
                     optionally | 64 or | 32 for an effort bucket), got {}",
                    a.role
                ),
            ));
        }
        if !a.sums.is_finite() {
            return Err(CoreError::field(
                format!("snapshot.arms[{i}].sums"),
                "must be finite and ≥ 0",
            ));
        }
    }
    Ok(Decoded(body))
}

impl Decoded {
    pub fn last_now(&self) -> f64 {
        self.0.last_now
    }

    /// Adds these sums into `table`, aligning both to the later epoch start.
    pub fn merge_into(&self, table: &mut ArmTable, lambda: f64) {
        let Some(ts) = self.0.t0 else { return };
        let t_new = table.t0.map_or(ts, |t| t.max(ts));
        table.rebase(t_new, lambda);
        let f = (-lambda * (t_new - ts)).exp();
        for a in &self.0.arms {
            let model = table.models.intern(&a.model);
            let class = a
                .class
                .as_deref()
                .map_or(ALL_CLASSES, |c| table.classes.intern(c));
            let mut sums = a.sums;
            if f != 1.0 {
                sums.scale(f);
            }
            let key = ArmKey {
                model,
                role: a.role,
                class,
            };
            table.with_arm(key, |arm| arm.sums.merge(&sums));
        }
    }
}
