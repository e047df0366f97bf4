//! `/openapi/v2`: the one Swagger 2.0 document of the whole API, built from the same schemas as
//! the `/openapi/v3` documents (every served group-version's document, merged and converted).
//!
//! kubectl still reads it: client-side validation of a `v1` `List` (`kubectl apply -f` of a
//! file that `kubectl get -o yaml` wrote) looks every item's kind up in this document.
//! client-go asks for the protobuf form only (`openapi_v2.Document` of gnostic) and has no
//! JSON fallback, so both are served, negotiated by `Accept` as the apiserver does: the
//! protobuf media type gets protobuf, JSON (or no preference) gets JSON, anything else 406.
//!
//! The conversion follows what the apiserver publishes in v2 for a structural schema: v2 has no
//! `nullable`, `anyOf`, `oneOf` or `not`; a nullable or `x-kubernetes-preserve-unknown-fields`
//! schema loses its type-specific children (kubectl's parser would otherwise reject unknown
//! fields there), and an array without `items` loses its type (kubectl's parser needs items).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value, json};

use super::openapi;
use super::types::Registry;

/// The media type client-go's discovery client sends for `/openapi/v2`.
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The same type as the apiserver names it in `Content-Type` (and also accepts): `@` is not a
/// token character, and Go's MIME parser in kubectl rejects a response labelled with it.
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// What a client accepts, in the apiserver's order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Protobuf,
}

/// Chooses the form of the document for an `Accept` header; `None` when nothing acceptable
/// is offered (the apiserver answers 406).
pub fn negotiate(accept: &str) -> Option<Format> {
    if accept.trim().is_empty() {
        return Some(Format::Json);
    }
    for range in accept.split(',') {
        let media = range.split(';').next().unwrap_or_default().trim();
        match media {
            PROTOBUF | PROTOBUF_CONTENT_TYPE => return Some(Format::Protobuf),
            "application/json" | "application/*" | "*/*" => return Some(Format::Json),
            _ => {}
        }
    }
    None
}

const V3_REF: &str = "#/components/schemas/";
const V2_REF: &str = "#/definitions/";

/// A v3 schema as v2 publishes it.
fn schema_v2(v3: &Value) -> Value {
    let Some(m) = v3.as_object() else {
        return v3.clone();
    };
    // `allOf: [{$ref}]` with siblings (how v3 documents a described reference) is a plain
    // reference in v2.
    if let Some([one]) = m.get("allOf").and_then(Value::as_array).map(Vec::as_slice)
        && one.get("$ref").is_some()
    {
        let mut out = schema_v2(one);
        if let Some(d) = m.get("description") {
            out["description"] = d.clone();
        }
        return out;
    }
    let mut out = Map::new();
    for (k, v) in m {
        match k.as_str() {
            "nullable" | "anyOf" | "oneOf" | "not" | "allOf" => {}
            "$ref" => {
                let r = v.as_str().unwrap_or_default();
                out.insert(k.clone(), json!(r.replacen(V3_REF, V2_REF, 1)));
            }
            "properties" => {
                let props: Map<String, Value> = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| (name.clone(), schema_v2(s)))
                    .collect();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" if v.is_object() => {
                out.insert(k.clone(), schema_v2(v));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let nullable = m.get("nullable") == Some(&json!(true));
    if nullable {
        out.remove("type");
    }
    if nullable || m.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true)) {
        out.remove("items");
        out.remove("properties");
    }
    if out.get("type") == Some(&json!("array")) && !out.contains_key("items") {
        out.remove("type");
    }
    Value::Object(out)
}

fn parameter_v2(p: &Value) -> Value {
    let mut out = json!({"name": p["name"], "in": p["in"]});
    if let Some(t) = p["schema"].get("type") {
        out["type"] = t.clone();
    }
    if p["schema"].get("uniqueItems") == Some(&json!(true)) {
        out["uniqueItems"] = json!(true);
    }
    out
}

/// One operation in v2 form: the request body becomes a `body` parameter, media types move to
/// `consumes`/`produces`, the response schema is lifted out of its content.
fn operation_v2(op: &Value) -> Value {
    let mut out = Map::new();
    for key in [
        "operationId",
        "description",
        "x-kubernetes-action",
        "x-kubernetes-group-version-kind",
    ] {
        if let Some(v) = op.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let mut params: Vec<Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(parameter_v2)
        .collect();
    if let Some(content) = op["requestBody"]["content"].as_object() {
        params.push(
            json!({"name": "body", "in": "body", "required": true, "schema": {"type": "object"}}),
        );
        out.insert(
            "consumes".into(),
            json!(content.keys().cloned().collect::<Vec<_>>()),
        );
    }
    out.insert("parameters".into(), Value::Array(params));
    out.insert(
        "produces".into(),
        json!(["application/json", "application/yaml"]),
    );
    let mut responses = Map::new();
    for (code, r) in op["responses"].as_object().into_iter().flatten() {
        let mut resp = json!({"description": r["description"]});
        if let Some(s) = r["content"]["application/json"].get("schema") {
            resp["schema"] = schema_v2(s);
        }
        responses.insert(code.clone(), resp);
    }
    out.insert("responses".into(), Value::Object(responses));
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}

/// The whole-API v2 document in JSON form.
pub fn document(reg: &Registry) -> Value {
    let mut definitions = Map::new();
    let mut paths = Map::new();
    for (group, versions) in reg.groups() {
        for version in versions {
            let gv = if group.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{group}/{version}")
            };
            let Some(doc) = openapi::group_version_doc(reg, &gv) else {
                continue;
            };
            for (name, s) in doc["components"]["schemas"]
                .as_object()
                .into_iter()
                .flatten()
            {
                definitions
                    .entry(name.clone())
                    .or_insert_with(|| schema_v2(s));
            }
            for (path, item) in doc["paths"].as_object().into_iter().flatten() {
                let ops: Map<String, Value> = item
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(verb, op)| (verb.clone(), operation_v2(op)))
                    .collect();
                paths.insert(path.clone(), Value::Object(ops));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "definitions": definitions,
    })
}

/// The document in both forms, rebuilt only when the served types change.
pub struct Rendered {
    pub json: Vec<u8>,
    pub protobuf: Vec<u8>,
}

/// The rendered document for the registry as it is now (cached by its OpenAPI v3 index, whose
/// hashes change with every custom resource schema).
pub fn rendered(reg: &Registry) -> Arc<Rendered> {
    type Cached = Option<(u64, Arc<Rendered>)>;
    static CACHE: OnceLock<Mutex<Cached>> = OnceLock::new();
    let mut h = DefaultHasher::new();
    openapi::index(reg).to_string().hash(&mut h);
    let key = h.finish();
    let cache = CACHE.get_or_init(Default::default);
    if let Some((k, r)) = cache.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
        && *k == key
    {
        return r.clone();
    }
    let doc = document(reg);
    let r = Arc::new(Rendered {
        json: serde_json::to_vec(&doc).unwrap_or_default(),
        protobuf: gnostic::document(&doc),
    });
    *cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((key, r.clone()));
    r
}

/// Encoding of the JSON document as gnostic's `openapi.v2.Document` protobuf message (the
/// field numbers of gnostic's `OpenAPIv2.proto`).
mod gnostic {
    use serde_json::{Map, Value};

    /// A protobuf message being written: fields appended in order.
    #[derive(Default)]
    struct Msg(Vec<u8>);

    impl Msg {
        fn varint(&mut self, mut v: u64) {
            while v >= 0x80 {
                self.0.push((v as u8) | 0x80);
                v >>= 7;
            }
            self.0.push(v as u8);
        }
        fn key(&mut self, field: u32, wire: u8) {
            self.varint((u64::from(field) << 3) | u64::from(wire));
        }
        fn bytes(&mut self, field: u32, b: &[u8]) {
            self.key(field, 2);
            self.varint(b.len() as u64);
            self.0.extend_from_slice(b);
        }
        fn string(&mut self, field: u32, s: &str) {
            if !s.is_empty() {
                self.bytes(field, s.as_bytes());
            }
        }
        fn message(&mut self, field: u32, m: Msg) {
            self.bytes(field, &m.0);
        }
        fn boolean(&mut self, field: u32, b: bool) {
            if b {
                self.key(field, 0);
                self.varint(1);
            }
        }
        fn int(&mut self, field: u32, v: i64) {
            if v != 0 {
                self.key(field, 0);
                self.varint(v as u64);
            }
        }
        fn double(&mut self, field: u32, v: f64) {
            if v != 0.0 {
                self.key(field, 1);
                self.0.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// `Any{yaml}`: gnostic keeps free-form values (defaults, enums, vendor extensions) as YAML
    /// text, and JSON is YAML.
    fn any(v: &Value) -> Msg {
        let mut m = Msg::default();
        m.string(2, &v.to_string());
        m
    }

    /// `NamedAny{name, value}` for every `x-` key of `obj`.
    fn vendor_extensions(m: &mut Msg, field: u32, obj: &Map<String, Value>) {
        for (k, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
            let mut named = Msg::default();
            named.string(1, k);
            named.message(2, any(v));
            m.message(field, named);
        }
    }

    fn strings(m: &mut Msg, field: u32, v: Option<&Value>) {
        for s in v.and_then(Value::as_array).into_iter().flatten() {
            m.string(field, s.as_str().unwrap_or_default());
        }
    }

    fn str_of<'a>(o: &'a Map<String, Value>, k: &str) -> &'a str {
        o.get(k).and_then(Value::as_str).unwrap_or_default()
    }

    fn schema(v: &Value) -> Msg {
        let mut m = Msg::default();
        let Some(o) = v.as_object() else {
            return m;
        };
        m.string(1, str_of(o, "$ref"));
        m.string(2, str_of(o, "format"));
        m.string(3, str_of(o, "title"));
        m.string(4, str_of(o, "description"));
        if let Some(d) = o.get("default") {
            m.message(5, any(d));
        }
        let f = |k: &str| o.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let i = |k: &str| o.get(k).and_then(Value::as_i64).unwrap_or(0);
        let b = |k: &str| o.get(k).and_then(Value::as_bool).unwrap_or(false);
        m.double(6, f("multipleOf"));
        m.double(7, f("maximum"));
        m.boolean(8, b("exclusiveMaximum"));
        m.double(9, f("minimum"));
        m.boolean(10, b("exclusiveMinimum"));
        m.int(11, i("maxLength"));
        m.int(12, i("minLength"));
        m.string(13, str_of(o, "pattern"));
        m.int(14, i("maxItems"));
        m.int(15, i("minItems"));
        m.boolean(16, b("uniqueItems"));
        m.int(17, i("maxProperties"));
        m.int(18, i("minProperties"));
        strings(&mut m, 19, o.get("required"));
        for e in o
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            m.message(20, any(e));
        }
        match o.get("additionalProperties") {
            Some(Value::Bool(flag)) => {
                let mut a = Msg::default();
                a.key(2, 0);
                a.varint(u64::from(*flag));
                m.message(21, a);
            }
            Some(s @ Value::Object(_)) => {
                let mut a = Msg::default();
                a.message(1, schema(s));
                m.message(21, a);
            }
            _ => {}
        }
        match o.get("type") {
            Some(Value::String(t)) => {
                let mut ti = Msg::default();
                ti.string(1, t);
                m.message(22, ti);
            }
            Some(Value::Array(ts)) => {
                let mut ti = Msg::default();
                for t in ts {
                    ti.string(1, t.as_str().unwrap_or_default());
                }
                m.message(22, ti);
            }
            _ => {}
        }
        if let Some(items) = o.get("items").filter(|i| i.is_object()) {
            let mut it = Msg::default();
            it.message(1, schema(items));
            m.message(23, it);
        }
        for s in o
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            m.message(24, schema(s));
        }
        if let Some(props) = o.get("properties").and_then(Value::as_object) {
            let mut p = Msg::default();
            for (name, s) in props {
                let mut named = Msg::default();
                named.string(1, name);
                named.message(2, schema(s));
                p.message(1, named);
            }
            m.message(25, p);
        }
        m.string(26, str_of(o, "discriminator"));
        m.boolean(27, b("readOnly"));
        if let Some(e) = o.get("example") {
            m.message(30, any(e));
        }
        vendor_extensions(&mut m, 31, o);
        m
    }

    /// `ParametersItem{parameter: Parameter{...}}`.
    fn parameter(p: &Value) -> Msg {
        let o = p.as_object().cloned().unwrap_or_default();
        let mut param = Msg::default();
        if str_of(&o, "in") == "body" {
            let mut body = Msg::default();
            body.string(1, str_of(&o, "description"));
            body.string(2, str_of(&o, "name"));
            body.string(3, "body");
            body.boolean(4, o.get("required") == Some(&Value::Bool(true)));
            if let Some(s) = o.get("schema") {
                body.message(5, schema(s));
            }
            param.message(1, body);
        } else {
            let mut q = Msg::default();
            q.boolean(1, o.get("required") == Some(&Value::Bool(true)));
            q.string(2, str_of(&o, "in"));
            q.string(3, str_of(&o, "description"));
            q.string(4, str_of(&o, "name"));
            q.string(6, str_of(&o, "type"));
            q.boolean(20, o.get("uniqueItems") == Some(&Value::Bool(true)));
            let mut non_body = Msg::default();
            non_body.message(3, q);
            param.message(2, non_body);
        }
        let mut item = Msg::default();
        item.message(1, param);
        item
    }

    fn operation(op: &Value) -> Msg {
        let mut m = Msg::default();
        let o = op.as_object().cloned().unwrap_or_default();
        m.string(3, str_of(&o, "description"));
        m.string(5, str_of(&o, "operationId"));
        strings(&mut m, 6, o.get("produces"));
        strings(&mut m, 7, o.get("consumes"));
        for p in o
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            m.message(8, parameter(p));
        }
        let mut responses = Msg::default();
        for (code, r) in o
            .get("responses")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let mut resp = Msg::default();
            resp.string(1, r["description"].as_str().unwrap_or_default());
            if let Some(s) = r.get("schema") {
                let mut item = Msg::default();
                item.message(1, schema(s));
                resp.message(2, item);
            }
            let mut value = Msg::default();
            value.message(1, resp);
            let mut named = Msg::default();
            named.string(1, code);
            named.message(2, value);
            responses.message(1, named);
        }
        m.message(9, responses);
        strings(&mut m, 10, o.get("schemes"));
        vendor_extensions(&mut m, 13, &o);
        m
    }

    fn path_item(item: &Value) -> Msg {
        let mut m = Msg::default();
        for (verb, field) in [
            ("get", 2),
            ("put", 3),
            ("post", 4),
            ("delete", 5),
            ("options", 6),
            ("head", 7),
            ("patch", 8),
        ] {
            if let Some(op) = item.get(verb) {
                m.message(field, operation(op));
            }
        }
        m
    }

    /// The `openapi.v2.Document` message for a v2 JSON document.
    pub fn document(doc: &Value) -> Vec<u8> {
        let mut m = Msg::default();
        m.string(1, doc["swagger"].as_str().unwrap_or("2.0"));
        let mut info = Msg::default();
        info.string(1, doc["info"]["title"].as_str().unwrap_or_default());
        info.string(2, doc["info"]["version"].as_str().unwrap_or_default());
        m.message(2, info);
        let mut paths = Msg::default();
        for (p, item) in doc["paths"].as_object().into_iter().flatten() {
            let mut named = Msg::default();
            named.string(1, p);
            named.message(2, path_item(item));
            paths.message(2, named);
        }
        m.message(8, paths);
        let mut defs = Msg::default();
        for (name, s) in doc["definitions"].as_object().into_iter().flatten() {
            let mut named = Msg::default();
            named.string(1, name);
            named.message(2, schema(s));
            defs.message(1, named);
        }
        m.message(9, defs);
        m.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation_prefers_what_the_client_lists_first() {
        let cases = [
            ("", Some(Format::Json)),
            (PROTOBUF, Some(Format::Protobuf)),
            (
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json",
                Some(Format::Protobuf),
            ),
            ("application/json", Some(Format::Json)),
            ("*/*", Some(Format::Json)),
            ("application/vnd.kubernetes.protobuf", None),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn v3_schemas_convert_to_what_v2_can_say() {
        let cases = [
            (
                json!({"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}),
                json!({"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"}),
            ),
            (
                json!({"allOf": [{"$ref": "#/components/schemas/M"}], "description": "d"}),
                json!({"$ref": "#/definitions/M", "description": "d"}),
            ),
            (
                json!({"type": "object", "nullable": true, "properties": {"a": {"type": "string"}}}),
                json!({}),
            ),
            (
                json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"a": {}}}),
                json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            ),
            (json!({"type": "array"}), json!({})),
            (
                json!({"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}),
                json!({"x-kubernetes-int-or-string": true}),
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array", "items": {"$ref": "#/components/schemas/X"}}}}),
                json!({"type": "object", "properties": {"l": {"type": "array", "items": {"$ref": "#/definitions/X"}}}}),
            ),
        ];
        for (v3, v2) in cases {
            assert_eq!(schema_v2(&v3), v2, "{v3}");
        }
    }

    #[test]
    fn every_reference_of_the_document_resolves() {
        let doc = document(&Registry::with_builtins());
        let defs = doc["definitions"].as_object().unwrap();
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                        out.push(r.to_string());
                    }
                    m.values().for_each(|x| refs(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 100);
        for r in all {
            let name = r.strip_prefix(V2_REF).expect("a v2 reference");
            assert!(defs.contains_key(name), "{r} does not resolve");
        }
        let deployment = &defs["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        assert!(
            doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
                ["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
    }

    /// Reads back the top-level fields of a message: (field, wire type, payload).
    fn fields(mut b: &[u8]) -> Vec<(u64, u8, Vec<u8>)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    break;
                }
            }
            v
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = varint(&mut b);
            let wire = (key & 7) as u8;
            let payload = match wire {
                0 => varint(&mut b).to_le_bytes().to_vec(),
                1 => {
                    let (p, rest) = b.split_at(8);
                    b = rest;
                    p.to_vec()
                }
                2 => {
                    let n = varint(&mut b) as usize;
                    let (p, rest) = b.split_at(n);
                    b = rest;
                    p.to_vec()
                }
                w => panic!("unexpected wire type {w}"),
            };
            out.push((key >> 3, wire, payload));
        }
        out
    }

    #[test]
    fn protobuf_document_carries_swagger_version_and_named_definitions() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": {},
            "definitions": {"io.k8s.X": {"type": "object", "required": ["a"],
                "properties": {"a": {"type": "string"}},
                "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "X"}]}},
        });
        let top = fields(&gnostic::document(&doc));
        assert_eq!(top[0], (1, 2, b"2.0".to_vec()));
        let defs = &top.iter().find(|f| f.0 == 9).unwrap().2;
        let named = &fields(defs)[0].2;
        let named = fields(named);
        assert_eq!(named[0].2, b"io.k8s.X");
        let schema = fields(&named[1].2);
        let numbers: Vec<u64> = schema.iter().map(|f| f.0).collect();
        // required (19), type (22), properties (25), vendor extension (31)
        assert_eq!(numbers, [19, 22, 25, 31]);
        let ext = fields(&schema[3].2);
        assert_eq!(ext[0].2, b"x-kubernetes-group-version-kind");
        let any = fields(&ext[1].2);
        assert_eq!(any[0].0, 2, "the value is kept as YAML text");
        let text: Value = serde_json::from_slice(&any[0].2).unwrap();
        assert_eq!(text[0]["kind"], "X");
    }
}
