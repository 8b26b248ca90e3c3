//! What an audit entry says about a change: the paths of the fields that changed, so that the
//! log tells who changed the key and when without ever holding a key.

use serde_json::Value;

/// JSON paths (`options.secure_key.key`) whose values differ between `old` and `new`.
pub fn changed_fields(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

/// The audit detail of an update of the stored resource `old` to `new`: the changed paths,
/// comma-separated (the time of the change is the entry's own).
pub(crate) fn update_detail(
    old: &tollgate_model::Resource,
    new: &tollgate_model::Resource,
) -> String {
    changed_fields(
        &serde_json::to_value(old).unwrap_or_default(),
        &serde_json::to_value(new).unwrap_or_default(),
    )
    .into_iter()
    .filter(|f| f != "updated")
    .collect::<Vec<_>>()
    .join(",")
}

fn walk(prefix: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(
                    &path,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (a, b) if a != b => out.push(prefix.to_owned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_not_values() {
        let old =
            serde_json::json!({"origin": "a", "options": {"secure_key": {"key": "old_secret"}}});
        let new = serde_json::json!({"origin": "a", "options": {"secure_key": {"key": "new_secret"}}, "name": "x"});
        let c = changed_fields(&old, &new);
        assert_eq!(c, ["name", "options.secure_key.key"]);
        assert!(!format!("{c:?}").contains("secret"));
    }
}
