//! The telemetry of the Routes the front served, made here instead of in Python (docs/DESIGN.md
//! "The front's telemetry"): each sampled Route's server span encoded straight into OTLP bytes
//! (`ScopeSpans.spans` fields, which the Python exporter wraps in its resource and scope and sends),
//! and the metrics' inputs summed per label set, so that recording a batch of Routes costs Python a
//! few calls per batch rather than ~60 µs a Route.
//!
//! What the spans must be: what `front.py`'s `_server_span` (and so the SDK's `start_span(...).end()`
//! with `otlp_encode` after it) makes of the same Route: the attributes in the order and with the
//! keys Python gives (`Spec`), the caller's `traceparent` read as the W3C propagator reads it, the
//! sampler Python's tracer provider uses (described to `Sampler`; a sampler that cannot be
//! described keeps the Python path), random non-zero ids, and, when the exporter redacts, bearer
//! tokens scrubbed from string values as `redact.py` does. tests/telemetry/test_front_span.py and
//! the both-fronts telemetry tests hold the two paths to the same spans.

use std::collections::HashMap;

use rand::RngCore;
use serde::Deserialize;
use serde_json::Value;

use super::route::Routed;

/// How Python's tracer provider samples, as far as a server span with a remote parent or none can
/// tell (its local-parent branches never apply here).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sampler {
    On,
    Off,
    /// `TraceIdRatioBased`: sampled when the trace id's low 64 bits are below `bound`.
    Ratio {
        bound: u64,
    },
    Parent {
        root: Box<Sampler>,
        remote_sampled: Box<Sampler>,
        remote_not_sampled: Box<Sampler>,
    },
}

impl Sampler {
    fn sampled(&self, trace_id: &[u8; 16], parent: Option<&Parent>) -> bool {
        match self {
            Sampler::On => true,
            Sampler::Off => false,
            Sampler::Ratio { bound } => {
                let mut low = [0u8; 8];
                low.copy_from_slice(&trace_id[8..]);
                u64::from_be_bytes(low) < *bound
            }
            Sampler::Parent {
                root,
                remote_sampled,
                remote_not_sampled,
            } => match parent {
                None => root.sampled(trace_id, None),
                Some(p) if p.sampled => remote_sampled.sampled(trace_id, parent),
                Some(_) => remote_not_sampled.sampled(trace_id, parent),
            },
        }
    }
}

/// A Route's value that a span attribute carries (route_attributes' parameter names).
#[derive(Debug, Clone, Copy)]
enum Field {
    Tenant,
    KeyId,
    JobId,
    DecisionId,
    Role,
    TaskClass,
    Attempt,
    Model,
    Provider,
    UpstreamModel,
    Fallbacks,
    CostUsd,
    SuccessProbability,
    LatencyMs,
    Exploration,
    Sticky,
    BudgetRemainingUsd,
    ReservedUsd,
    Replayed,
}

impl Field {
    fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "tenant" => Self::Tenant,
            "key_id" => Self::KeyId,
            "job_id" => Self::JobId,
            "decision_id" => Self::DecisionId,
            "role" => Self::Role,
            "task_class" => Self::TaskClass,
            "attempt" => Self::Attempt,
            "model" => Self::Model,
            "provider" => Self::Provider,
            "upstream_model" => Self::UpstreamModel,
            "fallbacks" => Self::Fallbacks,
            "cost_usd" => Self::CostUsd,
            "success_probability" => Self::SuccessProbability,
            "latency_ms" => Self::LatencyMs,
            "exploration" => Self::Exploration,
            "sticky" => Self::Sticky,
            "budget_remaining_usd" => Self::BudgetRemainingUsd,
            "reserved_usd" => Self::ReservedUsd,
            "replayed" => Self::Replayed,
            other => return Err(format!("front telemetry: no Route field named {other:?}")),
        })
    }
}

/// What `front.py` sends (`telemetry_spec`), as JSON.
#[derive(Debug, Deserialize)]
struct SpecJson {
    roles: HashMap<i32, String>,
    spans: Option<SpansJson>,
}

#[derive(Debug, Deserialize)]
struct SpansJson {
    name: String,
    /// Attributes every Route span carries first, in order: [key, value].
    fixed: Vec<(String, Value)>,
    /// Then one per Route field: [key, field name].
    route: Vec<(String, String)>,
    /// The text a bearer token is replaced by, when the exporter redacts.
    scrub: Option<String>,
    sampler: Sampler,
    /// At most this many spans in one returned piece (the exporter's batch size).
    max_batch: usize,
}

/// The front's telemetry settings; `None` spans: Python records no span of the front's.
pub struct Spec {
    roles: HashMap<i32, String>,
    spans: Option<Spans>,
}

struct Spans {
    name: String,
    /// The fixed attributes, encoded once (each a `Span.attributes` field).
    fixed: Vec<u8>,
    /// Each Route attribute's `KeyValue.key` field and `KeyValue.value` tag, with its field.
    route: Vec<(Vec<u8>, Field)>,
    scrub: Option<String>,
    sampler: Sampler,
    max_batch: usize,
}

impl Spec {
    pub fn parse(json: &str) -> Result<Self, String> {
        let s: SpecJson =
            serde_json::from_str(json).map_err(|e| format!("front telemetry: {e}"))?;
        let spans = match s.spans {
            None => None,
            Some(j) => {
                let mut fixed = Vec::new();
                for (key, value) in &j.fixed {
                    let mut body = Vec::new();
                    any_json(&mut body, value, j.scrub.as_deref())
                        .map_err(|e| format!("front telemetry: attribute {key:?}: {e}"))?;
                    attribute(&mut fixed, &key_prefix(key), &body);
                }
                let route = j
                    .route
                    .iter()
                    .map(|(key, field)| Ok((key_prefix(key), Field::parse(field)?)))
                    .collect::<Result<_, String>>()?;
                Some(Spans {
                    name: j.name,
                    fixed,
                    route,
                    scrub: j.scrub,
                    sampler: j.sampler,
                    max_batch: j.max_batch.max(1),
                })
            }
        };
        Ok(Self {
            roles: s.roles,
            spans,
        })
    }

    fn role(&self, role: i32) -> &str {
        self.roles.get(&role).map_or("unspecified", String::as_str)
    }
}

/// A decision counter's labels: (tenant, model, role, exploration, task_class).
pub type DecisionLabels = (String, String, String, bool, String);
/// A budget gauge's labels: (tenant, scope, subject, window).
pub type BudgetLabels = (String, &'static str, String, i64);

/// A batch of the front's Routes, summed for metrics, with the sampled spans encoded.
#[derive(Debug, Default)]
pub struct Summary {
    /// Decisions per model (Admin.GetStats).
    pub by_model: Vec<(String, u64)>,
    /// Count per label set, first seen first.
    pub decisions: Vec<(DecisionLabels, u64)>,
    /// The latest remaining amount per budget window, first seen first.
    pub budgets: Vec<(BudgetLabels, f64)>,
    /// (tenant, job_id, role) once each, first seen first.
    pub job_roles: Vec<(String, String, String)>,
    pub core_s: Vec<f64>,
    pub store_s: Vec<f64>,
    pub rpc_ms: Vec<f64>,
    /// Encoded spans in pieces of at most `max_batch`: (bytes, how many spans).
    pub spans: Vec<(Vec<u8>, usize)>,
}

/// Index of `key` in `list`, added at the end when new (keeps first-seen order).
fn slot<K: std::hash::Hash + Eq + Clone, V: Default>(
    index: &mut HashMap<K, usize>,
    list: &mut Vec<(K, V)>,
    key: K,
) -> usize {
    *index.entry(key.clone()).or_insert_with(|| {
        list.push((key, V::default()));
        list.len() - 1
    })
}

/// Sums `routed` for the metrics (roles named by `spec`) and encodes the sampled spans.
pub fn summarize(routed: &[Routed], spec: Option<&Spec>) -> Summary {
    let mut out = Summary::default();
    let mut models: HashMap<String, usize> = HashMap::new();
    for r in routed {
        let i = slot(&mut models, &mut out.by_model, r.model.0.clone());
        out.by_model[i].1 += 1;
    }
    let Some(spec) = spec else { return out };
    let mut decisions = HashMap::new();
    let mut budgets = HashMap::new();
    let mut jobs = std::collections::HashSet::new();
    for r in routed {
        let role = spec.role(r.role);
        let key = (
            r.tenant.clone(),
            r.model.0.clone(),
            role.to_owned(),
            r.exploration,
            r.task_class.clone(),
        );
        let i = slot(&mut decisions, &mut out.decisions, key);
        out.decisions[i].1 += 1;
        for (scope, subject, window, left) in &r.budgets {
            if let Some(left) = left {
                let key = (r.tenant.clone(), *scope, subject.clone(), *window);
                let i = slot(&mut budgets, &mut out.budgets, key);
                out.budgets[i].1 = *left;
            }
        }
        let job = (r.tenant.clone(), r.job_id.clone(), role.to_owned());
        if jobs.insert(job.clone()) {
            out.job_roles.push(job);
        }
        out.core_s.push(r.core_s);
        out.store_s.push(r.store_s);
        out.rpc_ms.push(r.duration_ns as f64 / 1e6);
    }
    if let Some(spans) = &spec.spans {
        let mut rng = rand::thread_rng();
        let mut piece = (Vec::new(), 0usize);
        let mut body = Vec::with_capacity(1024);
        for r in routed {
            body.clear();
            if !span(&mut body, r, spec, spans, &mut rng) {
                continue;
            }
            field(&mut piece.0, 0x12, &body); // ScopeSpans.spans
            piece.1 += 1;
            if piece.1 == spans.max_batch {
                out.spans.push(std::mem::take(&mut piece));
            }
        }
        if piece.1 > 0 {
            out.spans.push(piece);
        }
    }
    out
}

/// The caller's span as W3C Trace Context's `traceparent` gives it.
#[derive(Debug, PartialEq, Eq)]
struct Parent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    sampled: bool,
}

/// `traceparent` read as OpenTelemetry Python's `TraceContextTextMapPropagator.extract` reads it:
/// `^[ \t]*VV-T{32}-S{16}-FF(?:(-.*)|[ \t]*)$` in lower-case hex, at most 512 characters, no
/// all-zero ids, version `ff` refused, and nothing after the flags for version `00`.
fn parse_traceparent(header: &str) -> Option<Parent> {
    const MAX: usize = 512;
    if header.chars().count() > MAX {
        return None;
    }
    let s = header.trim_start_matches([' ', '\t']).as_bytes();
    let hex = |b: &[u8]| b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    if s.len() < 55 || s[2] != b'-' || s[35] != b'-' || s[52] != b'-' {
        return None;
    }
    let (version, trace, span, flags) = (&s[..2], &s[3..35], &s[36..52], &s[53..55]);
    if !(hex(version) && hex(trace) && hex(span) && hex(flags)) {
        return None;
    }
    let rest = &s[55..];
    // `(-.*)` cannot cross a line break ('.' stops there), but `$` also matches before a final '\n'.
    let rest = rest.strip_suffix(b"\n").unwrap_or(rest);
    let extra = if rest.first() == Some(&b'-') {
        if rest.contains(&b'\n') {
            return None;
        }
        true
    } else if rest.iter().all(|c| matches!(c, b' ' | b'\t')) {
        false
    } else {
        return None;
    };
    if trace.iter().all(|&c| c == b'0') || span.iter().all(|&c| c == b'0') {
        return None;
    }
    if (version == b"00" && extra) || version == b"ff" {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    unhex(trace, &mut trace_id);
    unhex(span, &mut span_id);
    let mut flag = [0u8; 1];
    unhex(flags, &mut flag);
    Some(Parent {
        trace_id,
        span_id,
        sampled: flag[0] & 1 == 1,
    })
}

fn unhex(hex: &[u8], out: &mut [u8]) {
    let nibble = |c: u8| if c <= b'9' { c - b'0' } else { c - b'a' + 10 };
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = (nibble(pair[0]) << 4) | nibble(pair[1]);
    }
}

/// One Route's `Span` body, or false when the sampler drops it.
fn span(out: &mut Vec<u8>, r: &Routed, spec: &Spec, s: &Spans, rng: &mut impl RngCore) -> bool {
    let parent = r.traceparent.as_deref().and_then(parse_traceparent);
    let trace_id = match &parent {
        Some(p) => p.trace_id,
        None => loop {
            let mut id = [0u8; 16];
            rng.fill_bytes(&mut id);
            if id != [0; 16] {
                break id;
            }
        },
    };
    if !s.sampler.sampled(&trace_id, parent.as_ref()) {
        return false;
    }
    let span_id = loop {
        let id = rng.next_u64();
        if id != 0 {
            break id.to_be_bytes();
        }
    };
    out.extend_from_slice(&[0x0a, 16]);
    out.extend_from_slice(&trace_id);
    out.extend_from_slice(&[0x12, 8]);
    out.extend_from_slice(&span_id);
    if let Some(p) = &parent {
        out.extend_from_slice(&[0x22, 8]);
        out.extend_from_slice(&p.span_id);
    }
    if !s.name.is_empty() {
        field(out, 0x2a, s.name.as_bytes());
    }
    out.extend_from_slice(&[0x30, 0x02]); // kind: SERVER
    out.push(0x39);
    out.extend_from_slice(&r.start_unix_ns.to_le_bytes());
    let end = r.start_unix_ns + r.duration_ns;
    if end != 0 {
        out.push(0x41);
        out.extend_from_slice(&end.to_le_bytes());
    }
    out.extend_from_slice(&s.fixed);
    let scrub = s.scrub.as_deref();
    let mut value = Vec::with_capacity(128);
    for (prefix, f) in &s.route {
        value.clear();
        match f {
            Field::Tenant => any_str(&mut value, &r.tenant, scrub),
            Field::KeyId => any_str(&mut value, &r.key_id, scrub),
            Field::JobId => any_str(&mut value, &r.job_id, scrub),
            Field::DecisionId => any_str(&mut value, &r.decision_id, scrub),
            Field::Role => any_str(&mut value, spec.role(r.role), scrub),
            Field::TaskClass => any_str(&mut value, &r.task_class, scrub),
            Field::Attempt => any_int(&mut value, r.attempt),
            Field::Model => any_str(&mut value, &r.model.0, scrub),
            Field::Provider => any_str(&mut value, &r.model.1, scrub),
            Field::UpstreamModel => any_str(&mut value, &r.model.2, scrub),
            Field::Fallbacks => {
                let mut items = Vec::new();
                let mut one = Vec::new();
                for f in &r.fallbacks {
                    one.clear();
                    any_str(&mut one, f, scrub);
                    field(&mut items, 0x0a, &one);
                }
                field(&mut value, 0x2a, &items);
            }
            Field::CostUsd => any_double(&mut value, r.cost_usd),
            Field::SuccessProbability => any_double(&mut value, r.success_probability),
            Field::LatencyMs => any_double(&mut value, r.latency_ms),
            Field::Exploration => any_bool(&mut value, r.exploration),
            Field::Sticky => any_bool(&mut value, r.sticky),
            Field::BudgetRemainingUsd => any_double(&mut value, r.budget_remaining_usd),
            Field::ReservedUsd => any_double(&mut value, r.reserved_usd),
            Field::Replayed => any_bool(&mut value, false),
        }
        attribute(out, prefix, &value);
    }
    out.extend_from_slice(&[0x7a, 0x00]); // an empty Status
    let flags: u32 = if parent.is_some() { 0x300 } else { 0x100 };
    out.extend_from_slice(&[0x85, 0x01]);
    out.extend_from_slice(&flags.to_le_bytes());
    true
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n > 127 {
        out.push((n as u8 & 127) | 128);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A length-delimited field: tag, length, body.
fn field(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// `KeyValue.key` (left out when empty) and the tag of `KeyValue.value`.
fn key_prefix(key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if !key.is_empty() {
        field(&mut out, 0x0a, key.as_bytes());
    }
    out.push(0x12);
    out
}

/// A `Span.attributes` field: the key's prefix and the `AnyValue` body.
fn attribute(out: &mut Vec<u8>, prefix: &[u8], value: &[u8]) {
    let mut len = Vec::with_capacity(2);
    varint(&mut len, value.len() as u64);
    out.push(0x4a);
    varint(out, (prefix.len() + len.len() + value.len()) as u64);
    out.extend_from_slice(prefix);
    out.extend_from_slice(&len);
    out.extend_from_slice(value);
}

fn any_str(out: &mut Vec<u8>, text: &str, scrub: Option<&str>) {
    match scrub {
        Some(with) if has_bearer(text) => field(out, 0x0a, scrub_bearer(text, with).as_bytes()),
        _ => field(out, 0x0a, text.as_bytes()),
    }
}

fn any_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(&[0x10, u8::from(b)]);
}

fn any_int(out: &mut Vec<u8>, n: i64) {
    out.push(0x18);
    varint(out, n as u64);
}

fn any_double(out: &mut Vec<u8>, x: f64) {
    out.push(0x21);
    out.extend_from_slice(&x.to_le_bytes());
}

fn any_json(out: &mut Vec<u8>, v: &Value, scrub: Option<&str>) -> Result<(), String> {
    match v {
        Value::String(s) => any_str(out, s, scrub),
        Value::Bool(b) => any_bool(out, *b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => any_int(out, i),
            (None, Some(x)) if n.is_f64() => any_double(out, x),
            _ => return Err(format!("{n} is not an int64 or a double")),
        },
        other => return Err(format!("{other} is not a string, a number or a bool")),
    }
    Ok(())
}

/// Python's `str.isspace()`, which `\s` in a `str` pattern follows: Unicode's White_Space and the
/// four information separators U+001C-U+001F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The letters of "bearer" in either case; no other character case-folds to them.
fn starts_bearer(s: &str) -> bool {
    s.len() >= 6 && s.as_bytes()[..6].eq_ignore_ascii_case(b"bearer")
}

/// Where `(?i)bearer\s+\S+` matches `s` at its start: the match's length.
fn bearer_at(s: &str) -> Option<usize> {
    if !starts_bearer(s) {
        return None;
    }
    let rest = &s[6..];
    let spaces: usize = rest
        .chars()
        .take_while(|&c| py_space(c))
        .map(char::len_utf8)
        .sum();
    if spaces == 0 {
        return None;
    }
    let word: usize = rest[spaces..]
        .chars()
        .take_while(|&c| !py_space(c))
        .map(char::len_utf8)
        .sum();
    (word > 0).then_some(6 + spaces + word)
}

/// redact.py's `has_bearer`.
pub fn has_bearer(s: &str) -> bool {
    s.char_indices().any(|(i, _)| bearer_at(&s[i..]).is_some())
}

/// redact.py's `_BEARER.sub(REDACTED, s)`: every leftmost non-overlapping match replaced.
pub fn scrub_bearer(s: &str, with: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if let Some(n) = bearer_at(rest) {
            out.push_str(with);
            rest = &rest[n..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_read_as_the_w3c_propagator_reads_it() {
        let ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let p = parse_traceparent(ok).expect("valid");
        assert!(p.sampled);
        assert_eq!(p.span_id, [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]);
        assert_eq!(p.trace_id[0], 0x0a);
        assert!(
            !parse_traceparent(&ok.replace("-01", "-00"))
                .unwrap()
                .sampled
        );
        assert!(parse_traceparent(&format!(" \t{ok} \t")).is_some());
        assert!(parse_traceparent(&format!("{ok}\n")).is_some());
        assert!(parse_traceparent(&format!("{ok}-extra")).is_none()); // version 00: nothing after
        assert!(parse_traceparent(&format!("01{}-extra", &ok[2..])).is_some());
        assert!(parse_traceparent(&format!("ff{}", &ok[2..])).is_none());
        assert!(parse_traceparent(&ok.to_uppercase()).is_none());
        assert!(parse_traceparent(&format!("00-{}-b7ad6b7169203331-01", "0".repeat(32))).is_none());
        assert!(
            parse_traceparent(&format!("00-{}-{}-01", "a".repeat(32), "0".repeat(16))).is_none()
        );
        assert!(parse_traceparent(&format!("{ok}x")).is_none());
        assert!(parse_traceparent(&format!("01{}-{}", &ok[2..], "x".repeat(500))).is_none());
    }

    #[test]
    fn bearer_tokens_are_scrubbed_as_the_python_pattern_does() {
        let r = "[redacted]";
        assert_eq!(scrub_bearer("Bearer abc.def", r), "[redacted]");
        assert_eq!(scrub_bearer("x bEaReR\t\tabc rest", r), "x [redacted] rest");
        assert_eq!(scrub_bearer("bearer bearer x", r), "[redacted] x");
        assert_eq!(scrub_bearer("bearer", r), "bearer");
        assert_eq!(scrub_bearer("bearer   ", r), "bearer   ");
        assert_eq!(scrub_bearer("bearer\u{1f}é", r), "[redacted]");
        assert_eq!(scrub_bearer("abearerb c", r), "abearerb c");
        assert!(has_bearer("zBEARER\u{3000}k"));
        assert!(!has_bearer("bearer"));
    }

    #[test]
    fn the_samplers_decide_as_pythons() {
        let id = |low: u64| {
            let mut t = [0u8; 16];
            t[8..].copy_from_slice(&low.to_be_bytes());
            t
        };
        let ratio = Sampler::Ratio { bound: 100 };
        assert!(ratio.sampled(&id(99), None) && !ratio.sampled(&id(100), None));
        let parent = Sampler::Parent {
            root: Box::new(Sampler::Off),
            remote_sampled: Box::new(Sampler::On),
            remote_not_sampled: Box::new(Sampler::Off),
        };
        let p = |sampled| Parent {
            trace_id: id(1),
            span_id: [1; 8],
            sampled,
        };
        assert!(!parent.sampled(&id(1), None));
        assert!(parent.sampled(&id(1), Some(&p(true))));
        assert!(!parent.sampled(&id(1), Some(&p(false))));
    }
}
