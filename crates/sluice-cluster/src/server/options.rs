//! What the query string asks for: selectors, the Table detail, dry runs and the field
//! manager, parsed once per request the way the apiserver reads them.

use std::collections::HashMap;

use chrono::Utc;
use serde_json::json;

use crate::error::ApiError;
use crate::ops::WriteOpts;
use crate::selector::{Selector, field_value};
use crate::table::Include;
use crate::types::ResourceType;

/// Parsed query string (last value wins).
pub(super) struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(raw: &str) -> Query {
        Query(
            serde_urlencoded::from_str::<Vec<(String, String)>>(raw)
                .unwrap_or_default()
                .into_iter()
                .collect(),
        )
    }

    /// The value of `k`; an empty value counts as absent.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }

    /// `labelSelector` and `fieldSelector`; a field selector on a field the resource does not
    /// support is refused up front, as the apiserver does, rather than matching nothing.
    pub fn selectors(&self, t: &ResourceType) -> Result<(Selector, Selector), ApiError> {
        let label = Selector::parse_labels(self.get("labelSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?;
        let field = Selector::parse_fields(self.get("fieldSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?;
        let probe = json!({});
        for k in field.keys() {
            field_value(&t.plural, &probe, k).map_err(ApiError::bad_request)?;
        }
        Ok((label, field))
    }

    /// How much of each object a Table row carries (`includeObject`).
    pub fn include(&self) -> Include {
        match self.get("includeObject") {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }

    pub fn write_opts(&self) -> WriteOpts {
        WriteOpts {
            dry_run: self.get("dryRun") == Some("All"),
            now: now_string(),
        }
    }

    /// The field manager of a write: `fieldManager`, else the client's user-agent name, as the
    /// apiserver defaults it.
    pub fn manager(&self, user_agent: &str) -> String {
        self.get("fieldManager")
            .map(str::to_string)
            .or_else(|| {
                user_agent
                    .split('/')
                    .next()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "unknown".into())
    }
}

pub(super) fn now_string() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
