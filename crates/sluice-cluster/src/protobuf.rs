//! Decoding of Kubernetes protobuf request bodies. kubectl's typed commands (`kubectl create
//! namespace|configmap|secret|deployment|job|role...`) send `application/vnd.kubernetes.protobuf`
//! and client-go never falls back to JSON, so the server must read them. Responses stay JSON
//! (clients list JSON in Accept).
//!
//! `protobuf_table.txt` lists, per message, `number:jsonName:kind[:message]` for the types those
//! commands send (Kubernetes 1.33 wire numbers). Kinds: `s` string, `i` integer, `b` bool,
//! `y` bytes, `d`/`f` double/float, `m` message, `t` Time, `q` Quantity, `x` IntOrString,
//! `r` raw JSON (RawExtension, FieldsV1), `u` Duration; `R` prefix = repeated; `Ms`/`My`/`Mm`
//! maps of strings, bytes or messages. A field name starting with `~` is a struct Go embeds
//! inline (`IngressRule.ingressRuleValue`): its fields are written into the parent.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine as _;
use serde_json::{Map, Value, json};

const TABLE: &str = include_str!("protobuf_table.txt");

/// The 4-byte prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\x00";

#[derive(Debug, Clone)]
enum Kind {
    Str,
    Int,
    Bool,
    Bytes,
    Double,
    Float,
    Msg(String),
    Time,
    Quantity,
    IntOrString,
    Raw,
    Duration,
    MapStr,
    MapBytes,
    MapMsg(String),
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    kind: Kind,
    repeated: bool,
}

type Table = HashMap<String, HashMap<u64, Field>>;

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = Table::new();
        for line in TABLE.lines().filter(|l| !l.is_empty()) {
            let mut parts = line.split('|');
            let name = parts.next().unwrap_or_default().to_string();
            let mut fields = HashMap::new();
            for f in parts {
                let mut it = f.splitn(4, ':');
                let (Some(num), Some(fname), Some(kind)) = (it.next(), it.next(), it.next()) else {
                    continue;
                };
                let target = it.next().unwrap_or_default().to_string();
                let (repeated, kind) = match kind.strip_prefix('R') {
                    Some(k) => (true, k),
                    None => (false, kind),
                };
                let kind = match kind {
                    "s" => Kind::Str,
                    "i" => Kind::Int,
                    "b" => Kind::Bool,
                    "y" => Kind::Bytes,
                    "d" => Kind::Double,
                    "f" => Kind::Float,
                    "m" => Kind::Msg(target),
                    "t" => Kind::Time,
                    "q" => Kind::Quantity,
                    "x" => Kind::IntOrString,
                    "r" => Kind::Raw,
                    "u" => Kind::Duration,
                    "Ms" => Kind::MapStr,
                    "My" => Kind::MapBytes,
                    "Mm" => Kind::MapMsg(target),
                    _ => continue,
                };
                if let Ok(n) = num.parse() {
                    fields.insert(
                        n,
                        Field {
                            name: fname.to_string(),
                            kind,
                            repeated,
                        },
                    );
                }
            }
            t.insert(name, fields);
        }
        t
    })
}

/// Zero values a Go client encodes for unset non-pointer fields are dropped (as JSON's
/// `omitempty` would), except for these pointer fields where zero is meaningful.
const KEEP_ZERO: &[&str] = &[
    "replicas",
    "backoffLimit",
    "parallelism",
    "completions",
    "terminationGracePeriodSeconds",
];

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or("truncated field")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()? as usize;
        self.bytes(n)
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.bytes(8).map(|_| ()),
            2 => self.len_delimited().map(|_| ()),
            5 => self.bytes(4).map(|_| ()),
            w => Err(format!("unsupported wire type {w}")),
        }
    }
}

/// One field on the wire: (number, wire type, payload of a length-delimited field, value of the
/// others).
type WireField = (u64, u64, Vec<u8>, u64);

fn fields_of(buf: &[u8]) -> Result<Vec<WireField>, String> {
    let mut r = Reader { buf, pos: 0 };
    let mut out = Vec::new();
    while !r.done() {
        let key = r.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        match wire {
            0 => out.push((num, wire, Vec::new(), r.varint()?)),
            1 => {
                let b = r.bytes(8)?;
                out.push((
                    num,
                    wire,
                    Vec::new(),
                    u64::from_le_bytes(b.try_into().expect("8 bytes")),
                ));
            }
            2 => out.push((num, wire, r.len_delimited()?.to_vec(), 0)),
            5 => {
                let b = r.bytes(4)?;
                out.push((
                    num,
                    wire,
                    Vec::new(),
                    u64::from(u32::from_le_bytes(b.try_into().expect("4 bytes"))),
                ));
            }
            w => {
                r.skip(w)?;
            }
        }
    }
    Ok(out)
}

fn string(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in a string field".to_string())
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
    }
}

fn scalar(kind: &Kind, wire: u64, payload: &[u8], n: u64) -> Result<Value, String> {
    Ok(match kind {
        Kind::Str => json!(string(payload)?),
        Kind::Int => json!(n as i64),
        Kind::Bool => json!(n != 0),
        Kind::Bytes => json!(base64::engine::general_purpose::STANDARD.encode(payload)),
        Kind::Double => json!(f64::from_bits(n)),
        Kind::Float => json!(f32::from_bits(n as u32)),
        Kind::Msg(name) => Value::Object(message(payload, name)?),
        Kind::Time => {
            let mut secs = 0i64;
            let mut nanos = 0u32;
            for (num, _, _, v) in fields_of(payload)? {
                match num {
                    1 => secs = v as i64,
                    2 => nanos = v as u32,
                    _ => {}
                }
            }
            if secs == 0 && nanos == 0 {
                Value::Null
            } else {
                chrono::DateTime::from_timestamp(secs, nanos)
                    .map(|t| json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
                    .unwrap_or(Value::Null)
            }
        }
        Kind::Quantity => {
            let mut q = Value::Null;
            for (num, _, p, _) in fields_of(payload)? {
                if num == 1 {
                    q = json!(string(&p)?);
                }
            }
            q
        }
        Kind::IntOrString => {
            let (mut ty, mut i, mut s) = (0u64, 0i64, String::new());
            for (num, _, p, v) in fields_of(payload)? {
                match num {
                    1 => ty = v,
                    2 => i = v as i32 as i64,
                    3 => s = string(&p)?,
                    _ => {}
                }
            }
            if ty == 1 { json!(s) } else { json!(i) }
        }
        Kind::Raw => {
            let mut raw = Value::Null;
            for (num, _, p, _) in fields_of(payload)? {
                if num == 1 && !p.is_empty() {
                    raw = serde_json::from_slice(&p).map_err(|e| format!("embedded JSON: {e}"))?;
                }
            }
            raw
        }
        Kind::Duration => {
            let mut nanos = 0i64;
            for (num, _, _, v) in fields_of(payload)? {
                if num == 1 {
                    nanos = v as i64;
                }
            }
            json!(format!("{}s", nanos / 1_000_000_000))
        }
        Kind::MapStr | Kind::MapBytes | Kind::MapMsg(_) => {
            let _ = wire;
            Value::Null
        }
    })
}

fn message(buf: &[u8], name: &str) -> Result<Map<String, Value>, String> {
    let fields = table()
        .get(name)
        .ok_or_else(|| format!("no protobuf schema for {name}"))?;
    let mut out = Map::new();
    for (num, wire, payload, n) in fields_of(buf)? {
        let Some(f) = fields.get(&num) else { continue };
        match &f.kind {
            Kind::MapStr | Kind::MapBytes | Kind::MapMsg(_) => {
                let mut key = String::new();
                let mut val = Value::Null;
                for (en, ew, ep, ev) in fields_of(&payload)? {
                    match en {
                        1 => key = string(&ep)?,
                        2 => {
                            val = match &f.kind {
                                Kind::MapStr => json!(string(&ep)?),
                                Kind::MapBytes => scalar(&Kind::Bytes, ew, &ep, ev)?,
                                // A ResourceList's values are Quantities, not messages.
                                Kind::MapMsg(m) if m == "resource.Quantity" => {
                                    scalar(&Kind::Quantity, ew, &ep, ev)?
                                }
                                Kind::MapMsg(m) => Value::Object(message(&ep, m)?),
                                _ => Value::Null,
                            }
                        }
                        _ => {}
                    }
                }
                if val.is_null() {
                    val = match &f.kind {
                        Kind::MapMsg(_) => json!({}),
                        _ => json!(""),
                    };
                }
                let m = out.entry(f.name.clone()).or_insert_with(|| json!({}));
                m[key] = val;
            }
            kind if f.repeated => {
                let arr = out.entry(f.name.clone()).or_insert_with(|| json!([]));
                let packed = wire == 2
                    && matches!(kind, Kind::Int | Kind::Bool | Kind::Double | Kind::Float);
                if packed {
                    let mut r = Reader {
                        buf: &payload,
                        pos: 0,
                    };
                    while !r.done() {
                        let v = match kind {
                            Kind::Double => {
                                u64::from_le_bytes(r.bytes(8)?.try_into().expect("8 bytes"))
                            }
                            Kind::Float => u64::from(u32::from_le_bytes(
                                r.bytes(4)?.try_into().expect("4 bytes"),
                            )),
                            _ => r.varint()?,
                        };
                        arr.as_array_mut()
                            .expect("array")
                            .push(scalar(kind, 0, &[], v)?);
                    }
                } else {
                    let v = scalar(kind, wire, &payload, n)?;
                    arr.as_array_mut().expect("array").push(if v.is_null() {
                        json!({})
                    } else {
                        v
                    });
                }
            }
            // A struct embedded inline in Go (`json:",inline"`): its fields are the parent's.
            Kind::Msg(m) if f.name.starts_with('~') => out.extend(message(&payload, m)?),
            kind => {
                let v = scalar(kind, wire, &payload, n)?;
                if is_zero(&v) && !(KEEP_ZERO.contains(&f.name.as_str()) && v.is_number()) {
                    out.remove(&f.name);
                } else {
                    out.insert(f.name.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

fn message_for(api_version: &str, kind: &str) -> Option<String> {
    let pkg = match api_version {
        "v1" => "core",
        "apps/v1" => "apps",
        "batch/v1" => "batch",
        "rbac.authorization.k8s.io/v1" => "rbac",
        "autoscaling/v1" => "autoscalingv1",
        "autoscaling/v2" => "autoscalingv2",
        "policy/v1" => "policy",
        "networking.k8s.io/v1" => "networking",
        _ => return None,
    };
    let name = format!("{pkg}.{kind}");
    table().contains_key(&name).then_some(name)
}

/// Decodes a `application/vnd.kubernetes.protobuf` body into the JSON object it encodes.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("the protobuf body lacks the k8s prefix")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), Vec::new());
    for (num, _, payload, _) in fields_of(rest)? {
        match num {
            1 => {
                for (tn, _, tp, _) in fields_of(&payload)? {
                    match tn {
                        1 => api_version = string(&tp)?,
                        2 => kind = string(&tp)?,
                        _ => {}
                    }
                }
            }
            2 => raw = payload,
            _ => {}
        }
    }
    let name = message_for(&api_version, &kind)
        .ok_or_else(|| format!("no protobuf decoding for {api_version}, Kind={kind}; send JSON"))?;
    let mut obj = message(&raw, &name)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn field(num: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn entry(k: &str, v: &str) -> Vec<u8> {
        let mut e = Vec::new();
        field(1, k.as_bytes(), &mut e);
        field(2, v.as_bytes(), &mut e);
        e
    }

    #[test]
    fn decodes_a_configmap_like_kubectl_create_sends_it() {
        let mut meta = Vec::new();
        field(1, b"cfg", &mut meta);
        field(2, b"", &mut meta); // generateName: "" is dropped like omitempty
        field(11, &entry("app", "web"), &mut meta);
        let mut cm = Vec::new();
        field(1, &meta, &mut cm);
        field(2, &entry("a", "1"), &mut cm);
        field(2, &entry("empty", ""), &mut cm);
        let mut tm = Vec::new();
        field(1, b"v1", &mut tm);
        field(2, b"ConfigMap", &mut tm);
        let mut unknown = Vec::new();
        field(1, &tm, &mut unknown);
        field(2, &cm, &mut unknown);
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&unknown);
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"app": "web"}}, "data": {"a": "1", "empty": ""}})
        );
    }

    #[test]
    fn decodes_a_resource_quota_like_kubectl_create_quota_sends_it() {
        let mut meta = Vec::new();
        field(1, b"rs-quota", &mut meta);
        let mut quantity = Vec::new();
        field(1, b"1", &mut quantity);
        let mut hard = Vec::new();
        field(1, b"count/replicasets.apps", &mut hard);
        field(2, &quantity, &mut hard);
        let mut spec = Vec::new();
        field(1, &hard, &mut spec);
        field(2, b"NotTerminating", &mut spec);
        let mut quota = Vec::new();
        field(1, &meta, &mut quota);
        field(2, &spec, &mut quota);
        let mut tm = Vec::new();
        field(1, b"v1", &mut tm);
        field(2, b"ResourceQuota", &mut tm);
        let mut unknown = Vec::new();
        field(1, &tm, &mut unknown);
        field(2, &quota, &mut unknown);
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&unknown);
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "rs-quota"},
                   "spec": {"hard": {"count/replicasets.apps": "1"}, "scopes": ["NotTerminating"]}})
        );
    }

    #[test]
    fn the_table_covers_kubectl_create_kinds() {
        for (av, k) in [
            ("v1", "Namespace"),
            ("v1", "Secret"),
            ("v1", "ServiceAccount"),
            ("v1", "ResourceQuota"),
            ("v1", "Service"),
            ("apps/v1", "Deployment"),
            ("batch/v1", "Job"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ] {
            assert!(message_for(av, k).is_some(), "{av} {k}");
        }
        assert!(decode(b"nope").is_err());
    }
}
