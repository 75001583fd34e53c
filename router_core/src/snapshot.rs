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
//! Version 5 names each model and class once (two sorted name tables; arms refer to them by
//! index) and keeps latency as log-normal sums instead of a 32-bucket histogram: 177 bytes per
//! arm instead of ~450 plus two names. It is written straight from the table into one buffer of
//! the exact size, without an intermediate copy of the arms.
//! v1-v4 bodies restore with each histogram bucket's weight counted at its geometric midpoint.
//!
//! Version 6 keeps v5's layout; each ratio's third sum is Σw·r instead of Σw·ln² r (the mean
//! ratio, which expected costs now use, instead of a log-normal variance). v5 bodies, snapshots
//! and deltas alike, still restore and merge: their third sum becomes what those builds predicted,
//! Σw·exp(μ + min(σ², 4) / 2) (`RatioSums::from_log_moments`), converted arm by arm as read.
//! v1-v4 bodies convert the same way.
//!
//! A delta (`DELTA_MAGIC`, same version and body) holds one replica's changes since its last
//! delta, as differences that may be negative; merging one clamps what would fall below zero.
//!
//! Merge adds sums after aligning epochs to the later t0 (the earlier side is multiplied by
//! exp(−λ·Δt0)), so it is commutative and associative (up to float rounding), and merging into
//! an empty core is exactly a restore.

use std::collections::HashMap;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bincode::Options as _;
use serde::ser::{SerializeSeq as _, Serializer};
use serde::{Deserialize, Serialize};

use crate::arm::{ArmKey, ArmTable, Row, ALL_CLASSES, EFFORT_HIGH, EFFORT_LOW, RETRY};
use crate::error::{CoreError, Result};
use crate::stats::{LatencyHistV4, RatioSums, Sums};

const MAGIC: &[u8; 8] = b"MYRCORE\0";
/// A delta: the body of a table of differences (one replica's changes since its last delta,
/// see `ArmTable::journal`); its sums may be negative (a drift forgot evidence).
const DELTA_MAGIC: &[u8; 8] = b"MYRDELTA";
const VERSION: u32 = 6;
/// The previous version with the same layout (its ratios converted as read).
const V5: u32 = 5;

/// Whether a body of `version` has the name-table layout, read arm by arm as it streams (v5, v6).
fn streams(version: u32) -> bool {
    matches!(version, VERSION | V5)
}
/// Refuse bodies that claim absurd lengths rather than allocating for them.
const MAX_BODY: u64 = 1 << 30;
/// Class index of the pooled levels in a v5 or v6 body.
const POOLED: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct SnapArm {
    model: u32,
    role: u8,
    /// `POOLED` for the pooled levels.
    class: u32,
    sums: Sums,
}

/// A v1-v4 body: names on every arm.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct BodyV4<S> {
    half_life_s: f64,
    t0: Option<f64>,
    last_now: f64,
    arms: Vec<SnapArmV4<S>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct SnapArmV4<S> {
    model: String,
    role: u8,
    /// `None` for the pooled levels.
    class: Option<String>,
    sums: S,
}

/// A ratio as versions 2-5 kept it: Σw, Σw·ln r, Σw·ln² r.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct LogMomentsV5 {
    w: f64,
    wl: f64,
    wl2: f64,
}

impl From<LogMomentsV5> for RatioSums {
    fn from(v: LogMomentsV5) -> Self {
        RatioSums::from_log_moments(v.w, v.wl, v.wl2)
    }
}

/// A v5 arm read with v6's layout holds Σw·ln² r where v6 has Σw·r: converts it in place.
fn upgrade_v5(s: &mut Sums) {
    for r in [&mut s.ratio_in, &mut s.ratio_out, &mut s.cost_ratio] {
        *r = RatioSums::from_log_moments(r.w, r.wl, r.wr);
    }
}

/// Version 2-4 sums (latency as a histogram).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct SumsV4 {
    successes: f64,
    failures: f64,
    ratio_in: LogMomentsV5,
    ratio_out: LogMomentsV5,
    cost_ratio: LogMomentsV5,
    tokens_w: f64,
    input_plain: f64,
    cached_plain: f64,
    output_plain: f64,
    cost_w: f64,
    cost_plain: f64,
    latency: LatencyHistV4,
}

impl From<SumsV4> for Sums {
    fn from(v: SumsV4) -> Self {
        Self {
            successes: v.successes,
            failures: v.failures,
            ratio_in: v.ratio_in.into(),
            ratio_out: v.ratio_out.into(),
            cost_ratio: v.cost_ratio.into(),
            tokens_w: v.tokens_w,
            input_plain: v.input_plain,
            cached_plain: v.cached_plain,
            output_plain: v.output_plain,
            cost_w: v.cost_w,
            cost_plain: v.cost_plain,
            latency: v.latency.into(),
        }
    }
}

/// Version 1 sums (absolute log-token statistics).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
struct SumsV1 {
    successes: f64,
    failures: f64,
    tokens_in: [f64; 3],
    tokens_out: [f64; 3],
    input_plain: f64,
    cached_plain: f64,
    output_plain: f64,
    latency: LatencyHistV4,
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
            latency: v.latency.into(),
            ..Sums::default()
        }
    }
}

/// What `encode` writes, the v6 body (v5's layout): half_life_s, t0, last_now, the sorted model and class
/// names, then the arms sorted by (role, class name, model name), pooled levels first, so equal
/// states give equal bytes. Names are borrowed and each arm is read from the table as it is
/// written.
#[derive(Serialize)]
struct EncodeBody<'a> {
    half_life_s: f64,
    t0: Option<f64>,
    last_now: f64,
    models: Vec<&'a str>,
    classes: Vec<&'a str>,
    arms: EncodeArms<'a>,
}

struct EncodeArms<'a> {
    /// (role, class rank or POOLED, row), sorted.
    rows: Vec<(u8, u32, &'a Row)>,
    model_rank: Vec<u32>,
    count: usize,
}

impl Serialize for EncodeArms<'_> {
    /// Row by row, so the table is read in the order it is laid out.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.count))?;
        let mut arms = Vec::new();
        for &(role, class, row) in &self.rows {
            arms.clear();
            arms.extend(
                row.arms()
                    .map(|(m, arm)| (self.model_rank[m as usize], arm.sums)),
            );
            arms.sort_unstable_by_key(|&(model, _)| model);
            for &(model, sums) in &arms {
                seq.serialize_element(&SnapArm {
                    model,
                    role,
                    class,
                    sums,
                })?;
            }
        }
        seq.end()
    }
}

/// Sorted names and each id's rank among them (indexed by id; ids are dense interner ids).
fn ranks<'a>(used: impl Iterator<Item = (u32, &'a str)>) -> (Vec<&'a str>, Vec<u32>) {
    let mut names: Vec<(u32, &str)> = used.collect();
    names.sort_unstable_by(|a, b| a.1.cmp(b.1));
    let mut rank = vec![
        u32::MAX;
        names
            .iter()
            .map(|&(id, _)| id as usize + 1)
            .max()
            .unwrap_or(0)
    ];
    for (i, &(id, _)) in names.iter().enumerate() {
        rank[id as usize] = i as u32;
    }
    (names.into_iter().map(|(_, n)| n).collect(), rank)
}

/// Bytes of one encoded arm: model and class indices, role, the sums (bincode fixint).
const ARM_BYTES: usize = 4 + 1 + 4 + std::mem::size_of::<[f64; 21]>();

/// Encodes the table; equal states give equal bytes.
pub fn encode(table: &ArmTable, half_life_s: f64, last_now: f64) -> Result<Vec<u8>> {
    let mut out = vec![0; encoded_len(table)];
    encode_into(table, half_life_s, last_now, &mut out)?;
    Ok(out)
}

/// Encodes a journal of changes (see `ArmTable::journal`) as a delta.
pub fn encode_delta(journal: &ArmTable, half_life_s: f64, last_now: f64) -> Result<Vec<u8>> {
    let mut out = vec![0; encoded_len(journal)];
    encode_body(journal, half_life_s, last_now, &mut out, *DELTA_MAGIC)?;
    Ok(out)
}

/// Which rows (role, class id) an encoding holds.
type RowFilter<'f> = &'f dyn Fn(u8, u32) -> bool;

const ALL_ROWS: RowFilter<'static> = &|_, _| true;

/// Encodes a journal as deltas of about `max_arms` arms each (whole rows, so one row larger than
/// that is a part of its own): each part is a complete delta, merged on its own, and together
/// they are `encode_delta`'s (one part when it fits). A large change, such as a drift forgetting
/// across every class of a model or the backlog of a long store outage, then goes out in pieces
/// that each fit a store call, rather than as one buffer copied whole on its way to the socket.
pub fn encode_delta_parts(
    journal: &ArmTable,
    half_life_s: f64,
    last_now: f64,
    max_arms: usize,
) -> Result<Vec<Vec<u8>>> {
    plan_delta_parts(journal, max_arms)
        .iter()
        .map(|keys| encode_delta_part(journal, half_life_s, last_now, keys))
        .collect()
}

/// The rows of each part `encode_delta_parts` writes, each list sorted.
fn plan_delta_parts(journal: &ArmTable, max_arms: usize) -> Vec<Vec<(u8, u32)>> {
    let mut rows: Vec<((u8, u32), usize)> = journal
        .rows()
        .map(|(role, class, row)| ((role, class), row.models().count()))
        .filter(|&(_, n)| n > 0)
        .collect();
    rows.sort_unstable();
    let mut parts: Vec<Vec<(u8, u32)>> = Vec::new();
    let mut size = usize::MAX;
    for (key, n) in rows {
        if size.saturating_add(n) > max_arms.max(1) {
            parts.push(Vec::new());
            size = 0;
        }
        size += n;
        if let Some(p) = parts.last_mut() {
            p.push(key);
        }
    }
    parts
}

fn encode_delta_part(
    journal: &ArmTable,
    half_life_s: f64,
    last_now: f64,
    keys: &[(u8, u32)],
) -> Result<Vec<u8>> {
    let keep = |role: u8, class: u32| keys.binary_search(&(role, class)).is_ok();
    let mut out = Vec::new();
    write_body(
        journal,
        half_life_s,
        last_now,
        &mut out,
        *DELTA_MAGIC,
        &keep,
    )?;
    Ok(out)
}

/// `encode_delta_parts` one part at a time, over a journal taken out of its table (with a copy of
/// the table's names, `ArmTable::take_journal_owned`): a large change is encoded as it is sent, so
/// only one part's bytes exist at a time, and outside the core's lock.
pub struct DeltaParts {
    journal: ArmTable,
    half_life_s: f64,
    last_now: f64,
    parts: std::vec::IntoIter<Vec<(u8, u32)>>,
}

impl DeltaParts {
    pub fn new(journal: ArmTable, half_life_s: f64, last_now: f64, max_arms: usize) -> Self {
        let parts = plan_delta_parts(&journal, max_arms).into_iter();
        Self {
            journal,
            half_life_s,
            last_now,
            parts,
        }
    }
}

impl Iterator for DeltaParts {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let keys = self.parts.next()?;
        Some(encode_delta_part(
            &self.journal,
            self.half_life_s,
            self.last_now,
            &keys,
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.parts.size_hint()
    }
}

impl ExactSizeIterator for DeltaParts {}

/// The model and class ids that have arms (each sorted, once) and the number of arms.
fn used_ids(table: &ArmTable) -> (Vec<u32>, Vec<u32>, usize) {
    used_ids_of(table, ALL_ROWS)
}

fn used_ids_of(table: &ArmTable, keep: RowFilter<'_>) -> (Vec<u32>, Vec<u32>, usize) {
    let (mut models, mut classes, mut arms) = (Vec::new(), Vec::new(), 0);
    for (_, class, row) in table.rows().filter(|&(role, class, _)| keep(role, class)) {
        let before = models.len();
        models.extend(row.models());
        if class != ALL_CLASSES && models.len() > before {
            classes.push(class);
        }
        arms += models.len() - before;
    }
    for ids in [&mut models, &mut classes] {
        ids.sort_unstable();
        ids.dedup();
    }
    (models, classes, arms)
}

/// The length `encode` gives the table, computed without encoding it.
pub fn encoded_len(table: &ArmTable) -> usize {
    let (models, classes, arms) = used_ids(table);
    let names = |ids: &[u32], names: &crate::intern::Interner| {
        8 + ids.iter().map(|&i| 8 + names.name(i).len()).sum::<usize>()
    };
    let t0 = if table.t0.is_some() { 9 } else { 1 };
    12 + 8
        + t0
        + 8
        + names(&models, &table.models)
        + names(&classes, &table.classes)
        + 8
        + arms * ARM_BYTES
}

/// Encodes the table into `out`, which must be exactly `encoded_len(table)` long (an error
/// naming the lengths otherwise: the table changed in between).
pub fn encode_into(
    table: &ArmTable,
    half_life_s: f64,
    last_now: f64,
    out: &mut [u8],
) -> Result<()> {
    encode_body(table, half_life_s, last_now, out, *MAGIC)
}

fn encode_body(
    table: &ArmTable,
    half_life_s: f64,
    last_now: f64,
    out: &mut [u8],
    magic: [u8; 8],
) -> Result<()> {
    let want = encoded_len(table);
    if out.len() != want {
        return Err(CoreError::field(
            "snapshot",
            format!("buffer of {} bytes for a {want}-byte snapshot", out.len()),
        ));
    }
    let mut rest: &mut [u8] = out;
    write_body(table, half_life_s, last_now, &mut rest, magic, ALL_ROWS)?;
    debug_assert!(rest.is_empty());
    Ok(())
}

/// Writes the snapshot to `w` as it encodes it: a file written this way holds `encode`'s bytes
/// without the snapshot ever existing whole in memory (a million arms are 170 MB).
pub fn encode_to(table: &ArmTable, half_life_s: f64, last_now: f64, w: impl Write) -> Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
    write_body(table, half_life_s, last_now, &mut w, *MAGIC, ALL_ROWS)?;
    w.flush().map_err(io_error)
}

fn io_error(e: std::io::Error) -> CoreError {
    CoreError::field("snapshot", format!("cannot write: {e}"))
}

fn write_body(
    table: &ArmTable,
    half_life_s: f64,
    last_now: f64,
    mut out: impl Write,
    magic: [u8; 8],
    keep: RowFilter<'_>,
) -> Result<()> {
    let (model_ids, class_ids, count) = used_ids_of(table, keep);
    let (models, model_rank) = ranks(model_ids.iter().map(|&m| (m, table.models.name(m))));
    let (classes, class_rank) = ranks(class_ids.iter().map(|&c| (c, table.classes.name(c))));
    let mut rows: Vec<(u8, u32, &Row)> = table
        .rows()
        .filter(|&(role, class, row)| keep(role, class) && row.models().next().is_some())
        .map(|(role, class, row)| {
            let class = if class == ALL_CLASSES {
                POOLED
            } else {
                class_rank[class as usize]
            };
            (role, class, row)
        })
        .collect();
    // Pooled levels first within a role.
    rows.sort_unstable_by_key(|&(role, class, _)| (role, class.wrapping_add(1)));
    let body = EncodeBody {
        half_life_s,
        t0: table.t0,
        last_now,
        models,
        classes,
        arms: EncodeArms {
            rows,
            model_rank,
            count,
        },
    };
    out.write_all(&magic).map_err(io_error)?;
    out.write_all(&VERSION.to_le_bytes()).map_err(io_error)?;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .serialize_into(&mut out, &body)
        .map_err(|e| CoreError::field("snapshot", e))
}

/// A checked snapshot, ready to merge. A v5 or v6 body is checked arm by arm as it is read and read
/// again by `merge_into`, so a large snapshot never exists as a second copy of its arms.
pub struct Decoded<'a> {
    header: Header,
    arms: Arms<'a>,
    /// Arms per (role, class index): rows are sized once before the merge.
    per_row: HashMap<(u8, u32), usize>,
    /// A delta: sums are differences.
    delta: bool,
}

enum Arms<'a> {
    /// The v5 or v6 body's bytes, and the version.
    Stream(&'a [u8], u32),
    /// A file holding a v5 or v6 snapshot (`decode_file`), read again by the merge.
    File(PathBuf, u32),
    /// A v1-v4 body, converted.
    Converted(Vec<SnapArm>),
}

/// Everything of a v5 or v6 body but its arms.
#[derive(Debug, Clone, PartialEq)]
struct Header {
    half_life_s: f64,
    t0: Option<f64>,
    last_now: f64,
    models: Vec<String>,
    classes: Vec<String>,
}

type EachArm<'f> = &'f mut dyn FnMut(usize, &SnapArm, &Header) -> Result<()>;

/// Reads a v5 or v6 body, handing each arm to `each` as it is read (a v5 arm converted first).
/// Serde's side of it: the body is a 6-field tuple (bincode writes structs as tuples), its last
/// field a sequence of arms.
struct BodySeed<'f> {
    each: EachArm<'f>,
    /// A v5 body: each arm's ratios are converted (`upgrade_v5`).
    v5: bool,
    /// The error `each` returned (serde's own error type cannot carry it).
    stopped: Option<CoreError>,
}

impl<'de> serde::de::DeserializeSeed<'de> for &mut BodySeed<'_> {
    type Value = Header;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Header, D::Error> {
        d.deserialize_tuple(6, self)
    }
}

impl<'de> serde::de::Visitor<'de> for &mut BodySeed<'_> {
    type Value = Header;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a version 5 or 6 snapshot body")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Header, A::Error> {
        use serde::de::Error as _;
        let missing = || A::Error::custom("body ends early");
        let header = Header {
            half_life_s: seq.next_element()?.ok_or_else(missing)?,
            t0: seq.next_element()?.ok_or_else(missing)?,
            last_now: seq.next_element()?.ok_or_else(missing)?,
            models: seq.next_element()?.ok_or_else(missing)?,
            classes: seq.next_element()?.ok_or_else(missing)?,
        };
        seq.next_element_seed(ArmsSeed {
            body: self,
            header: &header,
        })?
        .ok_or_else(missing)?;
        Ok(header)
    }
}

struct ArmsSeed<'s, 'f> {
    body: &'s mut BodySeed<'f>,
    header: &'s Header,
}

impl<'de> serde::de::DeserializeSeed<'de> for ArmsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ArmsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence of arms")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<(), A::Error> {
        let mut i = 0;
        while let Some(mut arm) = seq.next_element::<SnapArm>()? {
            if self.body.v5 {
                upgrade_v5(&mut arm.sums);
            }
            if let Err(e) = (self.body.each)(i, &arm, self.header) {
                self.body.stopped = Some(e);
                return Err(serde::de::Error::custom("stopped"));
            }
            i += 1;
        }
        Ok(())
    }
}

fn options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(MAX_BODY)
}

fn corrupt(e: bincode::Error) -> CoreError {
    CoreError::field("snapshot", format!("corrupt body: {e}"))
}

/// Reads a v5 or v6 (`version`) body, calling `each` on every arm in order.
fn read_body(body: &[u8], version: u32, each: EachArm<'_>) -> Result<Header> {
    with_seed(each, version, |seed| options().deserialize_seed(seed, body))
}

/// `read_body` from a reader (a file, read through a buffer rather than whole).
fn read_body_from(body: impl Read, version: u32, each: EachArm<'_>) -> Result<Header> {
    with_seed(each, version, |seed| {
        options().deserialize_from_seed(seed, body)
    })
}

/// Runs `read` with a body seed handing arms to `each`; `each`'s own error wins over bincode's.
fn with_seed<'f>(
    each: EachArm<'f>,
    version: u32,
    read: impl FnOnce(&mut BodySeed<'f>) -> bincode::Result<Header>,
) -> Result<Header> {
    let mut seed = BodySeed {
        each,
        v5: version == V5,
        stopped: None,
    };
    let out = read(&mut seed);
    match (out, seed.stopped) {
        (_, Some(e)) => Err(e),
        (out, None) => out.map_err(corrupt),
    }
}

/// A v1-v4 body with names turned into name tables.
fn from_v4<S: Into<Sums>>(v: BodyV4<S>) -> (Header, Vec<SnapArm>) {
    let (mut models, mut classes) = (Vec::new(), Vec::new());
    let (mut model_ix, mut class_ix) = (HashMap::new(), HashMap::new());
    let index = |names: &mut Vec<String>, ix: &mut HashMap<String, u32>, name: String| {
        *ix.entry(name).or_insert_with_key(|n| {
            names.push(n.clone());
            names.len() as u32 - 1
        })
    };
    let arms = v
        .arms
        .into_iter()
        .map(|a| SnapArm {
            model: index(&mut models, &mut model_ix, a.model),
            role: a.role,
            class: a
                .class
                .map_or(POOLED, |c| index(&mut classes, &mut class_ix, c)),
            sums: a.sums.into(),
        })
        .collect();
    let header = Header {
        half_life_s: v.half_life_s,
        t0: v.t0,
        last_now: v.last_now,
        models,
        classes,
    };
    (header, arms)
}

/// The checks every arm passes before anything is merged.
fn check_arm(version: u32, i: usize, a: &SnapArm, h: &Header, delta: bool) -> Result<()> {
    let effort = a.role & (EFFORT_HIGH | EFFORT_LOW);
    let retry_ok = version >= 3 || a.role & RETRY == 0;
    let effort_ok =
        effort == 0 || version >= 4 && a.role & RETRY != 0 && effort != EFFORT_HIGH | EFFORT_LOW;
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
    if a.model as usize >= h.models.len()
        || a.class != POOLED && a.class as usize >= h.classes.len()
    {
        return Err(CoreError::field(
            format!("snapshot.arms[{i}]"),
            "names a model or class index beyond the body's name tables",
        ));
    }
    let (ok, what, rule) = if delta {
        (a.sums.is_all_finite(), "delta", "must be finite")
    } else {
        (a.sums.is_finite(), "snapshot", "must be finite and ≥ 0")
    };
    if !ok {
        return Err(CoreError::field(format!("{what}.arms[{i}].sums"), rule));
    }
    Ok(())
}

pub fn decode(data: &[u8]) -> Result<Decoded<'_>> {
    if data.len() >= 12 && &data[..8] == DELTA_MAGIC {
        return Err(CoreError::field(
            "snapshot",
            "is a delta of another replica's changes, not a snapshot (merge it with merge_delta)",
        ));
    }
    if data.len() < 12 || &data[..8] != MAGIC {
        return Err(CoreError::field(
            "snapshot",
            "not a modelyard core snapshot (bad magic)",
        ));
    }
    decode_body(data, false)
}

/// A delta (see `encode_delta`), checked like a snapshot except that sums may be negative.
pub fn decode_delta(data: &[u8]) -> Result<Decoded<'_>> {
    if data.len() < 12 || &data[..8] != DELTA_MAGIC {
        return Err(CoreError::field(
            "delta",
            "not a modelyard core delta (bad magic)",
        ));
    }
    decode_body(data, true)
}

fn version_of(head: &[u8]) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&head[8..12]);
    u32::from_le_bytes(v)
}

fn decode_body(data: &[u8], delta: bool) -> Result<Decoded<'_>> {
    let version = version_of(data);
    if delta && !streams(version) {
        return Err(CoreError::field(
            "delta.version",
            format!("unsupported version {version}, expected {VERSION} (or {V5})"),
        ));
    }
    let body = &data[12..];
    let (header, arms, per_row) = match version {
        v if streams(v) => {
            let (header, per_row) = check_streamed(delta, |each| read_body(body, version, each))?;
            (header, Arms::Stream(body, version), per_row)
        }
        // v3 and v4 have v2's layout; v3 adds retry arms (role | RETRY) and the hardness arms,
        // v4 the effort-bucketed retry arms.
        2..=4 => {
            let (h, arms) = from_v4::<SumsV4>(options().deserialize(body).map_err(corrupt)?);
            (h, Arms::Converted(arms), HashMap::new())
        }
        1 => {
            let (h, arms) = from_v4::<SumsV1>(options().deserialize(body).map_err(corrupt)?);
            (h, Arms::Converted(arms), HashMap::new())
        }
        _ => {
            return Err(CoreError::field(
                "snapshot.version",
                format!("unsupported version {version}, expected {VERSION} (or 5, 4, 3, 2, 1)"),
            ))
        }
    };
    finish(version, header, arms, per_row, delta)
}

/// Arms per (role, class index) of a body.
type PerRow = HashMap<(u8, u32), usize>;

/// Reads a v5 or v6 body through `read`, checking every arm and counting arms per row.
fn check_streamed(
    delta: bool,
    read: impl FnOnce(EachArm<'_>) -> Result<Header>,
) -> Result<(Header, PerRow)> {
    let mut per_row: HashMap<(u8, u32), usize> = HashMap::new();
    let header = read(&mut |i, a, h| {
        check_arm(VERSION, i, a, h, delta)?;
        *per_row.entry((a.role, a.class)).or_default() += 1;
        Ok(())
    })?;
    Ok((header, per_row))
}

/// The checks that follow reading a body: the header's times, and the arms of a converted one.
fn finish(
    version: u32,
    header: Header,
    arms: Arms<'_>,
    mut per_row: HashMap<(u8, u32), usize>,
    delta: bool,
) -> Result<Decoded<'_>> {
    if header.t0.is_some_and(|t| !t.is_finite())
        || !header.last_now.is_finite() && header.last_now != f64::NEG_INFINITY
    {
        return Err(CoreError::field("snapshot.t0", "must be finite"));
    }
    if let Arms::Converted(arms) = &arms {
        for (i, a) in arms.iter().enumerate() {
            check_arm(version, i, a, &header, delta)?;
            *per_row.entry((a.role, a.class)).or_default() += 1;
        }
    }
    Ok(Decoded {
        header,
        arms,
        per_row,
        delta,
    })
}

fn read_error(path: &Path, e: &std::io::Error) -> CoreError {
    CoreError::field("snapshot", format!("cannot read {}: {e}", path.display()))
}

/// A snapshot in a file (written by `encode_to`), checked like `decode` but read through a
/// buffer: a v5 or v6 body is read twice (checked, then merged) and never held whole in memory.
pub fn decode_file(path: &Path) -> Result<Decoded<'static>> {
    let mut f = std::fs::File::open(path).map_err(|e| read_error(path, &e))?;
    let mut head = [0u8; 12];
    if f.read_exact(&mut head).is_err() {
        return Err(CoreError::field(
            "snapshot",
            format!(
                "{} is not a modelyard core snapshot (shorter than its header)",
                path.display()
            ),
        ));
    }
    let version = version_of(&head);
    if !streams(version) || &head[..8] != MAGIC {
        // A delta, a bad magic or a version before 5: small or refused; checked as bytes.
        let mut data = head.to_vec();
        f.read_to_end(&mut data).map_err(|e| read_error(path, &e))?;
        let d = decode(&data)?;
        let Arms::Converted(arms) = d.arms else {
            unreachable!("only v5 and v6 bodies stream, and this one was read from the file");
        };
        return Ok(Decoded {
            header: d.header,
            arms: Arms::Converted(arms),
            per_row: d.per_row,
            delta: false,
        });
    }
    let body = std::io::BufReader::with_capacity(1 << 16, f);
    let (header, per_row) = check_streamed(false, |each| read_body_from(body, version, each))?;
    finish(
        version,
        header,
        Arms::File(path.to_owned(), version),
        per_row,
        false,
    )
}

impl Decoded<'_> {
    pub fn last_now(&self) -> f64 {
        self.header.last_now
    }

    /// Adds these sums into `table`, aligning both to the later epoch start; never recorded as a
    /// change of `table`. A delta's differences are clamped where they would leave a sum below
    /// zero.
    pub fn merge_into(&self, table: &mut ArmTable, lambda: f64) -> Result<()> {
        self.add_into(table, lambda, self.delta)
    }

    /// Adds a delta back into a journal (differences stay differences).
    pub fn add_to_journal(&self, journal: &mut ArmTable, lambda: f64) -> Result<()> {
        self.add_into(journal, lambda, false)
    }

    /// Fails only when a file's second read does (`decode_file`); the arms read before the
    /// failure stay merged.
    fn add_into(&self, table: &mut ArmTable, lambda: f64, clamp: bool) -> Result<()> {
        let h = &self.header;
        let Some(ts) = h.t0 else { return Ok(()) };
        let t_new = table.t0.map_or(ts, |t| t.max(ts));
        table.rebase(t_new, lambda);
        let f = (-lambda * (t_new - ts)).exp();
        let models: Vec<u32> = h.models.iter().map(|m| table.models.intern(m)).collect();
        let classes: Vec<u32> = h.classes.iter().map(|c| table.classes.intern(c)).collect();
        let class = |c: u32| {
            if c == POOLED {
                ALL_CLASSES
            } else {
                classes[c as usize]
            }
        };
        for (&(role, c), &n) in &self.per_row {
            table.reserve(role, class(c), n);
        }
        let key = |a: &SnapArm| ArmKey {
            model: models[a.model as usize],
            role: a.role,
            class: class(a.class),
        };
        let mut add = |a: &SnapArm| {
            let mut sums = a.sums;
            if f != 1.0 {
                sums.scale(f);
            }
            table.with_arm_untracked(key(a), |arm| {
                arm.sums.merge(&sums);
                if clamp {
                    arm.sums.clamp_non_negative();
                }
            });
        };
        match &self.arms {
            Arms::Converted(arms) => arms.iter().for_each(add),
            Arms::Stream(body, version) => {
                // Checked by `decode`: the second read cannot fail.
                let read = read_body(body, *version, &mut |_, a, _| {
                    add(a);
                    Ok(())
                });
                debug_assert!(read.is_ok());
            }
            Arms::File(path, version) => {
                let mut f = std::fs::File::open(path).map_err(|e| read_error(path, &e))?;
                let mut head = [0u8; 12];
                f.read_exact(&mut head).map_err(|e| read_error(path, &e))?;
                let body = std::io::BufReader::with_capacity(1 << 16, f);
                read_body_from(body, *version, &mut |_, a, _| {
                    add(a);
                    Ok(())
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `table` as a v2-v4 body would have held it, every latency in histogram bucket 5.
    fn legacy(table: &ArmTable, version: u32) -> Vec<u8> {
        let arms = table
            .iter()
            .map(|(k, a)| {
                let s = a.sums;
                let mut hist = [0.0; 32];
                hist[5] = s.latency.w;
                SnapArmV4 {
                    model: table.models.name(k.model).to_owned(),
                    role: k.role,
                    class: (k.class != ALL_CLASSES).then(|| table.classes.name(k.class).to_owned()),
                    sums: SumsV4 {
                        successes: s.successes,
                        failures: s.failures,
                        ratio_in: v5_moments(s.ratio_in),
                        ratio_out: v5_moments(s.ratio_out),
                        cost_ratio: v5_moments(s.cost_ratio),
                        tokens_w: s.tokens_w,
                        input_plain: s.input_plain,
                        cached_plain: s.cached_plain,
                        output_plain: s.output_plain,
                        cost_w: s.cost_w,
                        cost_plain: s.cost_plain,
                        latency: LatencyHistV4 {
                            w: s.latency.w,
                            wx: s.latency.wx,
                            hist,
                        },
                    },
                }
            })
            .collect();
        let body = BodyV4 {
            half_life_s: 3600.0,
            t0: table.t0,
            last_now: 10.0,
            arms,
        };
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&bincode::serialize(&body).unwrap());
        out
    }

    /// A ratio as v2-v5 held it, for sums whose every ratio was the same (σ² = 0).
    fn v5_moments(r: RatioSums) -> LogMomentsV5 {
        LogMomentsV5 {
            w: r.w,
            wl: r.wl,
            wl2: if r.w > 0.0 { r.wl * r.wl / r.w } else { 0.0 },
        }
    }

    /// One arm of model "m", class "c" per role; the pooled level of the first role too.
    fn table_with(roles: &[u8]) -> ArmTable {
        let mut t = ArmTable::default();
        t.t0 = Some(0.0);
        let (model, class) = (t.models.intern("m"), t.classes.intern("c"));
        for (i, &role) in roles.iter().enumerate() {
            for class in [class, ALL_CLASSES]
                .into_iter()
                .take(if i == 0 { 2 } else { 1 })
            {
                t.with_arm(ArmKey { model, role, class }, |a| {
                    a.sums.successes = 2.0 + i as f64;
                    a.sums.failures = 1.0;
                    a.sums.ratio_in.add_ratio(1.0, 2.0, 1.0);
                    a.sums.cost_w = 1.0;
                    a.sums.cost_plain = 0.25;
                    a.sums.latency.add(1.0, 80.0);
                });
            }
        }
        t
    }

    #[test]
    fn older_versions_restore_what_they_could_hold_and_refuse_what_they_could_not() {
        let cases: [(u32, &[u8], u8); 3] = [
            (2, &[2, 1], 2 | RETRY),
            (3, &[2 | RETRY, 2], 2 | RETRY | EFFORT_HIGH),
            (4, &[2 | RETRY | EFFORT_LOW, 1], 7),
        ];
        for (version, fits, too_new) in cases {
            let t = table_with(fits);
            let mut back = ArmTable::default();
            decode(&legacy(&t, version))
                .unwrap()
                .merge_into(&mut back, 0.0)
                .unwrap();
            assert_eq!(back.iter().count(), fits.len() + 1, "v{version}");
            for (k, a) in t.iter() {
                let key = ArmKey {
                    model: back.models.get("m").unwrap(),
                    class: back
                        .classes
                        .get("c")
                        .filter(|_| k.class != ALL_CLASSES)
                        .unwrap_or(ALL_CLASSES),
                    ..k
                };
                let got = back.get(key).unwrap().sums;
                let want = Sums {
                    latency: got.latency,
                    ratio_in: got.ratio_in,
                    ..a.sums
                };
                assert_eq!(got, want, "v{version} {k:?}");
                // The ratio came back through exp(ln 2): its mean to rounding.
                let (r, w) = (got.ratio_in, a.sums.ratio_in);
                assert!(
                    r.w == w.w && r.wl == w.wl && (r.wr - w.wr).abs() < 1e-12,
                    "{r:?}"
                );
                assert_eq!((got.latency.w, got.latency.wx), (1.0, 80.0));
                let p90 = got.latency.p90().unwrap();
                assert!(
                    (p90 / (10.0 * 1.5f64.powf(5.5)) - 1.0).abs() < 1e-9,
                    "{p90}"
                );
            }
            let e = decode(&legacy(&table_with(&[too_new]), version))
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("arms[") && e.contains("role"), "v{version}: {e}");
        }
    }

    /// Snapshot or delta bytes with the version set to 5: v5's layout, so the ratios' third sums
    /// are read as v5's Σw·ln² r.
    fn as_v5(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes[8..12].copy_from_slice(&V5.to_le_bytes());
        bytes
    }

    #[test]
    fn version_5_snapshots_deltas_and_files_convert_their_ratios_as_read() {
        // One arm whose cost ratio saw 2 and 8, as a v5 build stored it: Σw 2, Σw·ln r, Σw·ln² r.
        let (l2, l8) = (2f64.ln(), 8f64.ln());
        let mut t = table_with(&[2]);
        let key = ArmKey {
            model: t.models.get("m").unwrap(),
            role: 2,
            class: t.classes.get("c").unwrap(),
        };
        t.with_arm(key, |a| {
            // table_with's one ratio of 2, in v5's form too.
            a.sums.ratio_in.wr = l2 * l2;
            a.sums.cost_ratio = RatioSums {
                w: 2.0,
                wl: l2 + l8,
                wr: l2 * l2 + l8 * l8,
            };
        });
        // What a v5 build predicted for it: 2 · exp(μ + σ²/2), μ = ln 4, σ² = ln² 2.
        let want = 2.0 * 4.0 * (l2 * l2 / 2.0).exp();
        let check = |back: &ArmTable, what: &str| {
            let key = ArmKey {
                model: back.models.get("m").unwrap(),
                role: 2,
                class: back.classes.get("c").unwrap(),
            };
            let r = back.get(key).unwrap().sums.cost_ratio;
            assert!((r.wr - want).abs() < 1e-9 && r.w == 2.0, "{what}: {r:?}");
            // The other ratio (one observation of 2) converts exactly.
            let r = back.get(key).unwrap().sums.ratio_in;
            assert!((r.wr - 2.0).abs() < 1e-12, "{what}: {r:?}");
        };
        let snap = as_v5(encode(&t, 3600.0, 10.0).unwrap());
        let mut back = ArmTable::default();
        decode(&snap).unwrap().merge_into(&mut back, 0.0).unwrap();
        check(&back, "snapshot");
        let delta = as_v5(encode_delta(&t, 3600.0, 10.0).unwrap());
        let mut back = ArmTable::default();
        decode_delta(&delta)
            .unwrap()
            .merge_into(&mut back, 0.0)
            .unwrap();
        check(&back, "delta");
        let dir = std::env::temp_dir().join(format!("myr-v5-{}", std::process::id()));
        std::fs::write(&dir, &snap).unwrap();
        let mut back = ArmTable::default();
        let merged = decode_file(&dir).and_then(|d| d.merge_into(&mut back, 0.0));
        std::fs::remove_file(&dir).unwrap();
        merged.unwrap();
        check(&back, "file");
        // Version 6 bytes of the same table keep Σw·r as it is.
        let mut back = ArmTable::default();
        decode(&encode(&t, 3600.0, 10.0).unwrap())
            .unwrap()
            .merge_into(&mut back, 0.0)
            .unwrap();
        let r = back
            .get(ArmKey {
                model: back.models.get("m").unwrap(),
                ..key
            })
            .unwrap();
        assert_eq!(r.sums.cost_ratio.wr, l2 * l2 + l8 * l8);
    }

    #[test]
    fn versions_5_and_6_name_each_model_and_class_once_and_are_canonical() {
        let mut t = table_with(&[2, 1]);
        let other = t.models.intern("a-model-with-a-long-name");
        for c in 0..50 {
            let class = t.classes.intern(&format!("class-number-{c}"));
            t.with_arm(
                ArmKey {
                    model: other,
                    role: 2,
                    class,
                },
                |a| a.sums.successes = 1.0,
            );
        }
        let bytes = encode(&t, 3600.0, 10.0).unwrap();
        assert_eq!(bytes.len(), encoded_len(&t));
        let mut short = vec![0; bytes.len() - 1];
        let e = encode_into(&t, 3600.0, 10.0, &mut short)
            .unwrap_err()
            .to_string();
        assert!(e.contains("buffer of"), "{e}");
        let long = b"a-model-with-a-long-name";
        assert_eq!(bytes.windows(long.len()).filter(|w| w == long).count(), 1);
        // Rebuilt in another order, with other interned ids: the same bytes.
        let mut u = ArmTable::default();
        u.classes.intern("class-number-7");
        u.models.intern("zzz-unused");
        decode(&bytes).unwrap().merge_into(&mut u, 0.0).unwrap();
        assert_eq!(encode(&u, 3600.0, 10.0).unwrap(), bytes);
    }

    #[test]
    fn one_bad_arm_or_a_cut_body_refuses_the_whole_snapshot() {
        let mut t = table_with(&[2, 1]);
        let (m, c) = (t.models.get("m").unwrap(), t.classes.get("c").unwrap());
        t.with_arm(
            ArmKey {
                model: m,
                role: 7,
                class: c,
            },
            |a| a.sums.successes = 1.0,
        );
        let bytes = encode(&t, 3600.0, 10.0).unwrap();
        let e = decode(&bytes).err().unwrap().to_string();
        assert!(
            e.starts_with("snapshot.arms[") && e.ends_with("got 7"),
            "{e}"
        );
        let good = encode(&table_with(&[2, 1]), 3600.0, 10.0).unwrap();
        let e = decode(&good[..good.len() - 5]).err().unwrap().to_string();
        assert!(e.starts_with("snapshot: corrupt body"), "{e}");
        assert!(decode(&good).is_ok());
    }

    #[test]
    fn a_snapshot_file_holds_the_same_bytes_and_decodes_like_them() {
        let dir = std::env::temp_dir().join(format!("myr-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut t = table_with(&[2, 1, RETRY | 2]);
        for c in 0..2_000 {
            let class = t.classes.intern(&format!("class-{c}"));
            let model = t.models.get("m").unwrap();
            t.with_arm(
                ArmKey {
                    model,
                    role: 2,
                    class,
                },
                |a| {
                    a.sums.successes = f64::from(c);
                    a.sums.failures = 0.5;
                },
            );
        }
        let bytes = encode(&t, 3600.0, 10.0).unwrap();
        let mut written = Vec::new();
        encode_to(&t, 3600.0, 10.0, &mut written).unwrap();
        assert_eq!(written, bytes);
        let path = dir.join("v5.snap");
        std::fs::write(&path, &bytes).unwrap();
        let mut back = ArmTable::default();
        decode_file(&path)
            .unwrap()
            .merge_into(&mut back, 0.0)
            .unwrap();
        assert_eq!(encode(&back, 3600.0, 10.0).unwrap(), bytes);
        // An older version in a file is converted as from bytes.
        let old = legacy(&table_with(&[2, 1]), 4);
        std::fs::write(&path, &old).unwrap();
        let (mut a, mut b) = (ArmTable::default(), ArmTable::default());
        decode_file(&path).unwrap().merge_into(&mut a, 0.0).unwrap();
        decode(&old).unwrap().merge_into(&mut b, 0.0).unwrap();
        assert_eq!(encode(&a, 1.0, 1.0).unwrap(), encode(&b, 1.0, 1.0).unwrap());
        // A delta is not a snapshot, in a file either.
        let mut delta = vec![0; encoded_len(&t)];
        encode_body(&t, 3600.0, 10.0, &mut delta, *DELTA_MAGIC).unwrap();
        std::fs::write(&path, &delta).unwrap();
        let e = decode_file(&path).err().unwrap().to_string();
        assert!(e.contains("is a delta"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_journal_in_parts_merges_to_the_whole_delta() {
        let mut t = table_with(&[2, 1]);
        let m = t.models.get("m").unwrap();
        for c in 0..300 {
            let class = t.classes.intern(&format!("class-{c}"));
            for role in [1, 2] {
                t.with_arm(
                    ArmKey {
                        model: m,
                        role,
                        class,
                    },
                    |a| {
                        a.sums.successes = f64::from(c) + 1.0;
                        a.sums.failures = -0.5; // a delta's differences may be negative
                    },
                );
            }
        }
        let whole = encode_delta(&t, 3600.0, 10.0).unwrap();
        assert_eq!(
            encode_delta_parts(&t, 3600.0, 10.0, 1 << 20).unwrap(),
            vec![whole.clone()]
        );
        let parts = encode_delta_parts(&t, 3600.0, 10.0, 50).unwrap();
        assert!(parts.len() >= 12, "{} parts", parts.len());
        let lazy = DeltaParts::new(t.clone(), 3600.0, 10.0, 50);
        assert_eq!(lazy.len(), parts.len());
        assert_eq!(lazy.collect::<Result<Vec<_>>>().unwrap(), parts);
        let (mut from_parts, mut from_whole) = (ArmTable::default(), ArmTable::default());
        for p in &parts {
            let d = decode_delta(p).unwrap();
            assert!(d.per_row.values().sum::<usize>() <= 50);
            d.add_to_journal(&mut from_parts, 0.0).unwrap();
        }
        decode_delta(&whole)
            .unwrap()
            .add_to_journal(&mut from_whole, 0.0)
            .unwrap();
        let enc = |t: &ArmTable| encode_delta(t, 3600.0, 10.0).unwrap();
        assert_eq!(enc(&from_parts), enc(&from_whole));
        assert!(encode_delta_parts(&ArmTable::default(), 1.0, 1.0, 10)
            .unwrap()
            .is_empty());
    }
}
