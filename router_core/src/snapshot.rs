//! Versioned snapshot bytes of the learned sums: `MAGIC`, a little-endian u32 version, then a
//! bincode body. Breakers and drift windows are per process and left out.
//!
//! Merge adds sums after aligning epochs to the later t0 (the earlier side is multiplied by
//! exp(−λ·Δt0)), so it is commutative and associative (up to float rounding), and merging into
//! an empty core is exactly a restore.

use bincode::Options as _;
use serde::{Deserialize, Serialize};

use crate::arm::{ArmKey, ArmTable, ALL_CLASSES};
use crate::error::{CoreError, Result};
use crate::stats::Sums;

const MAGIC: &[u8; 8] = b"MYRCORE\0";
const VERSION: u32 = 1;
/// Refuse bodies that claim absurd lengths rather than allocating for them.
const MAX_BODY: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Body {
    half_life_s: f64,
    t0: Option<f64>,
    last_now: f64,
    arms: Vec<SnapArm>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SnapArm {
    model: String,
    role: u8,
    /// `None` for the pooled levels.
    class: Option<String>,
    sums: Sums,
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
    if version != VERSION {
        return Err(CoreError::field(
            "snapshot.version",
            format!("unsupported version {version}, expected {VERSION}"),
        ));
    }
    let body: Body = bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(MAX_BODY)
        .deserialize(&data[12..])
        .map_err(|e| CoreError::field("snapshot", format!("corrupt body: {e}")))?;
    if body.t0.is_some_and(|t| !t.is_finite())
        || !body.last_now.is_finite() && body.last_now != f64::NEG_INFINITY
    {
        return Err(CoreError::field("snapshot.t0", "must be finite"));
    }
    for (i, a) in body.arms.iter().enumerate() {
        if a.role > 6 {
            return Err(CoreError::field(
                format!("snapshot.arms[{i}].role"),
                format!("must be 0..6, got {}", a.role),
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
            table
                .get_mut_or_insert(ArmKey {
                    model,
                    role: a.role,
                    class,
                })
                .sums
                .merge(&sums);
        }
    }
}
