//! CDN resources in Gcore's JSON shape, and their validation.
//!
//! One definition serves the edge's `--resources` file, the control-plane API and the config
//! snapshots pushed to edges, so a resource means the same thing everywhere. Parsing is strict
//! (unknown fields are refused, never dropped) and [`Resource::validate`] turns a parsed
//! resource into a [`ValidResource`] whose keys, hostnames and origin are known to be usable,
//! collecting every problem rather than stopping at the first.

mod cidr;
mod duration;
mod host;
mod key_strength;
mod options;
mod origin_group;
mod resource;
mod revocation;
mod serving;
mod snapshot;
mod validate;

pub use cidr::Cidr;
pub use duration::parse_gcore_duration;
pub use key_strength::{
    key_strength, KeyStrength, CORE_MD5_PER_SEC, GPU_MD5_PER_SEC, WARN_BELOW_BITS,
};
pub use options::methods::{Methods, METHODS};
pub use options::GCORE_OPTIONS;
pub use options::{
    parse_size, Access, Acl, AllowOrigin, Bandwidth, Compression, Cors, HideMode, Hiding,
    HidingPolicy, LimitBandwidth, LimitType, Policy, QueryKey, Seen, StaleOn, ValidCors,
    BROTLI_TYPES, GZIP_TYPES, MAX_ACL_ENTRIES, STALE_CONDITIONS,
};
pub use options::{
    EdgeCacheSettings, ForwardKeys, Forwarding, IpPrefix, OptionToggle, Options,
    QueryStringForwarding, ResponseHeader, SecureKey, SecureKeyMode, SecureKeyType,
    StaticResponseHeaders, StatusTimes, ValidSecureKey, DEFAULT_CACHE_SECS, MAX_CACHE_SECS,
};
pub use origin_group::{default_next_upstream, NextUpstream, OriginGroup, OriginSource, Origins};
pub use resource::{OriginProtocol, Resource};
pub use revocation::{Revocation, Revocations, MAX_REVOCATIONS};
pub use snapshot::{
    glob_match, query_component, Counters, EdgeReport, Prefetch, PrefetchFailure, PrefetchRequest,
    Purge, PurgeRequest, Snapshot, MAX_PURGE_ENTRIES,
};
pub use validate::{FieldError, ValidResource};

/// Parses a JSON array of resources (the edge's `--resources` file) and validates each one.
/// Errors name the resource (by index and id) and the field.
pub fn parse_resources(json: &str) -> Result<Vec<ValidResource>, Vec<FieldError>> {
    let raw: Vec<Resource> = serde_json::from_str(json).map_err(|e| {
        vec![FieldError {
            field: format!("line {} column {}", e.line(), e.column()),
            message: e.to_string(),
        }]
    })?;
    validate_all(raw)
}

/// Validates every resource, and that no hostname belongs to two of them.
pub fn validate_all(raw: Vec<Resource>) -> Result<Vec<ValidResource>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut valid = Vec::with_capacity(raw.len());
    let mut hosts = std::collections::HashMap::new();
    for (i, r) in raw.into_iter().enumerate() {
        let id = r.id;
        match r.validate() {
            Ok(v) => {
                for h in v.hostnames() {
                    if let Some(prev) = hosts.insert(h.to_owned(), v.id) {
                        errors.push(FieldError {
                            field: format!("[{i}] (id {}).cname", v.id),
                            message: format!("hostname {h} is already used by resource {prev}"),
                        });
                    }
                }
                valid.push(v);
            }
            Err(errs) => errors.extend(errs.into_iter().map(|e| FieldError {
                field: format!("[{i}] (id {id}).{}", e.field),
                message: e.message,
            })),
        }
    }
    if errors.is_empty() {
        Ok(valid)
    } else {
        Err(errors)
    }
}
