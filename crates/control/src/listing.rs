//! Gcore's list answers, written once for every list route (resources, origin groups, purge
//! statuses): filters compared with the answer's own fields, then paging. With `limit` (1 to
//! 1000) the answer is Gcore's envelope `{"count", "next", "previous", "results"}` (what the
//! official SDK reads); without it, a bare array (what Gcore's Go client reads). A parameter
//! that is neither a filter of the route nor `limit`/`offset` is a 400 naming it, never ignored.

use std::collections::HashMap;

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tollgate_model::query_component;

use crate::error::ApiError;

/// The most items one page holds, as Gcore allows.
pub const MAX_LIMIT: usize = 1000;

/// How a filter compares its parameter with an answer field.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `true`/`false` (also `1`/`0`); a missing or `null` field is false.
    Bool,
    /// Equal to the field, a number or a string as the field is.
    Exact,
    /// Equal ignoring ASCII case; a list field holds it.
    NoCase,
    /// One of a comma-separated list.
    In,
    /// The field (an RFC 3339 time) is at or after the value.
    Since,
    /// The field (an RFC 3339 time) is at or before the value.
    Until,
}

/// A filter: the parameter's names (Gcore's, and the spelling its SDK sends), how it compares,
/// and the answer fields it looks at, as JSON pointers (`/*` for each element of an array; any
/// one matching is a match).
pub struct Filter {
    /// Parameter names.
    pub params: &'static [&'static str],
    /// How it compares.
    pub kind: Kind,
    /// Answer fields.
    pub fields: &'static [&'static str],
}

/// Filters Gcore has that Tollgate refuses with a 400 saying so (rather than ignoring them).
pub struct Unsupported(pub &'static [&'static str]);

/// A list request: its filters, parsed and checked, and its page.
pub struct ListQuery<'a> {
    tests: Vec<(&'a Filter, Test)>,
    /// `Some` for Gcore's envelope.
    pub limit: Option<usize>,
    /// Items skipped first.
    pub offset: usize,
    raw: &'a HashMap<String, String>,
}

impl<'a> ListQuery<'a> {
    /// Parses the query of a list route taking `filters`; errors name the parameter.
    pub fn parse(
        q: &'a HashMap<String, String>,
        filters: &'a [Filter],
        unsupported: &Unsupported,
    ) -> Result<ListQuery<'a>, ApiError> {
        let mut tests = Vec::new();
        for (name, value) in q {
            if name == "limit" || name == "offset" {
                continue;
            }
            if unsupported.0.contains(&name.as_str()) {
                return Err(ApiError::invalid(
                    name.as_str(),
                    format!("the filter {name} is not supported by Tollgate"),
                ));
            }
            let Some(f) = filters.iter().find(|f| f.params.contains(&name.as_str())) else {
                let known: Vec<&str> = filters.iter().map(|f| f.params[0]).collect();
                return Err(ApiError::invalid(
                    name.as_str(),
                    format!(
                        "unknown parameter {name}; this list takes limit, offset, {}",
                        known.join(", ")
                    ),
                ));
            };
            tests.push((f, Test::parse(name, f.kind, value)?));
        }
        let limit = match q.get("limit").map(|v| v.parse::<usize>()) {
            None | Some(Ok(0)) => None,
            Some(Ok(n)) if n <= MAX_LIMIT => Some(n),
            Some(_) => {
                return Err(ApiError::invalid(
                    "limit",
                    format!("a number from 1 to {MAX_LIMIT}"),
                ))
            }
        };
        let offset = match q.get("offset") {
            None => 0,
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| ApiError::invalid("offset", "a number from 0"))?,
        };
        Ok(ListQuery {
            tests,
            limit,
            offset,
            raw: q,
        })
    }

    /// Whether any filter was given (else every item is on the list, and a store can page).
    pub fn filters(&self) -> bool {
        !self.tests.is_empty()
    }

    /// Whether `item` passes every filter.
    fn passes(&self, item: &Value) -> bool {
        self.tests.iter().all(|(f, t)| {
            f.fields.iter().any(|field| {
                let mut found = Vec::new();
                values(item, field, &mut found);
                found.into_iter().any(|v| t.matches(v))
            })
        })
    }

    /// The page of `items` (answers made one at a time: only the page's are kept) that pass
    /// the filters, and how many pass in all.
    pub fn page(&self, items: impl Iterator<Item = Value>) -> (usize, Vec<Value>) {
        let end = self
            .limit
            .map_or(usize::MAX, |l| self.offset.saturating_add(l));
        let mut count = 0;
        let mut page = Vec::new();
        for item in items.filter(|i| self.passes(i)) {
            if count >= self.offset && count < end {
                page.push(item);
            }
            count += 1;
        }
        (count, page)
    }

    /// The answer: `results` (the page) of `count` items, in Gcore's envelope with `limit`,
    /// else a bare array. `path` is the route's, for `next` and `previous`.
    pub fn answer(&self, path: &str, count: usize, results: Vec<Value>) -> Response {
        let Some(limit) = self.limit else {
            return Json(results).into_response();
        };
        let link = |offset: usize| {
            let mut query: Vec<String> = self
                .raw
                .iter()
                .filter(|(k, _)| *k != "offset")
                .map(|(k, v)| format!("{}={}", query_component(k), query_component(v)))
                .collect();
            query.sort();
            query.push(format!("offset={offset}"));
            Value::from(format!("{path}?{}", query.join("&")))
        };
        let next = if self.offset.saturating_add(limit) < count {
            link(self.offset.saturating_add(limit))
        } else {
            Value::Null
        };
        let previous = if self.offset > 0 {
            link(self.offset.saturating_sub(limit))
        } else {
            Value::Null
        };
        Json(json!({"count": count, "next": next, "previous": previous, "results": results}))
            .into_response()
    }
}

/// Filters `items` by the query and answers one page of them: [`ListQuery`] at once, for lists
/// held whole.
pub fn answer(
    path: &str,
    q: &HashMap<String, String>,
    filters: &[Filter],
    unsupported: &Unsupported,
    items: Vec<Value>,
) -> Result<Response, ApiError> {
    let query = ListQuery::parse(q, filters, unsupported)?;
    let (count, page) = query.page(items.into_iter());
    Ok(query.answer(path, count, page))
}

/// The values at `pointer` in `item`: a JSON pointer where `/*` stands for every element of
/// an array (`/sources/*/source`); a missing field is `null`.
fn values<'v>(item: &'v Value, pointer: &str, out: &mut Vec<&'v Value>) {
    match pointer.split_once("/*") {
        None => out.push(item.pointer(pointer).unwrap_or(&Value::Null)),
        Some((head, rest)) => {
            if let Some(Value::Array(list)) = item.pointer(head) {
                for element in list {
                    values(element, rest, out);
                }
            }
        }
    }
}

/// A parsed filter value.
enum Test {
    Bool(bool),
    Exact(String),
    NoCase(String),
    In(Vec<String>),
    Since(time::OffsetDateTime),
    Until(time::OffsetDateTime),
}

impl Test {
    fn parse(name: &str, kind: Kind, v: &str) -> Result<Test, ApiError> {
        Ok(match kind {
            Kind::Bool => Test::Bool(match v.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ApiError::invalid(
                        name,
                        format!("{v:?} is not true or false"),
                    ))
                }
            }),
            Kind::Exact => Test::Exact(v.to_owned()),
            Kind::NoCase => Test::NoCase(v.to_owned()),
            Kind::In => Test::In(v.split(',').map(|s| s.trim().to_owned()).collect()),
            Kind::Since | Kind::Until => {
                let t = parse_time(v).ok_or_else(|| {
                    ApiError::invalid(
                        name,
                        format!("{v:?} is not a time like 2026-01-31T12:00:00Z or a date like 2026-01-31"),
                    )
                })?;
                if matches!(kind, Kind::Since) {
                    Test::Since(t)
                } else {
                    Test::Until(t)
                }
            }
        })
    }

    fn matches(&self, field: &Value) -> bool {
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        match self {
            Test::Bool(want) => field.as_bool().unwrap_or(false) == *want,
            Test::Exact(want) => text(field).is_some_and(|t| t == *want),
            Test::NoCase(want) => match field.as_array() {
                Some(list) => list
                    .iter()
                    .any(|v| text(v).is_some_and(|t| t.eq_ignore_ascii_case(want))),
                None => text(field).is_some_and(|t| t.eq_ignore_ascii_case(want)),
            },
            Test::In(list) => text(field).is_some_and(|t| list.contains(&t)),
            Test::Since(t) => field.as_str().and_then(parse_time).is_some_and(|f| f >= *t),
            Test::Until(t) => field.as_str().and_then(parse_time).is_some_and(|f| f <= *t),
        }
    }
}

/// An RFC 3339 time, or a date (its midnight, UTC).
pub fn parse_time(v: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(v, &Rfc3339) {
        return Some(t);
    }
    let date =
        time::Date::parse(v, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(date.midnight().assume_utc())
}

/// Unix time `secs` in RFC 3339 (`2026-12-03T14:05:09Z`), as Gcore's answers give times.
pub fn rfc3339(secs: u64) -> String {
    use time::format_description::well_known::Rfc3339;
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILTERS: &[Filter] = &[
        Filter {
            params: &["cname"],
            kind: Kind::NoCase,
            fields: &["/cname"],
        },
        Filter {
            params: &["active"],
            kind: Kind::Bool,
            fields: &["/active"],
        },
        Filter {
            params: &["min_created"],
            kind: Kind::Since,
            fields: &["/created"],
        },
    ];

    fn items() -> Vec<Value> {
        (1..=5)
            .map(|i| {
                json!({"id": i, "cname": format!("c{i}.example"), "active": i % 2 == 1,
                    "created": rfc3339(1_700_000_000 + i * 86_400)})
            })
            .collect()
    }

    async fn body(r: Result<Response, ApiError>) -> Value {
        let r = r.unwrap_or_else(|e| panic!("{e:?}"));
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&b).unwrap()
    }

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const NONE: Unsupported = Unsupported(&["rules"]);

    #[tokio::test]
    async fn bare_without_limit_envelope_with_it() {
        let all = body(answer("/x", &q(&[]), FILTERS, &NONE, items())).await;
        assert_eq!(all.as_array().unwrap().len(), 5);
        let page = body(answer(
            "/x",
            &q(&[("limit", "2"), ("offset", "2")]),
            FILTERS,
            &NONE,
            items(),
        ))
        .await;
        assert_eq!(page["count"], 5);
        assert_eq!(page["results"].as_array().unwrap().len(), 2);
        assert_eq!(page["results"][0]["id"], 3);
        assert_eq!(page["next"], "/x?limit=2&offset=4");
        assert_eq!(page["previous"], "/x?limit=2&offset=0");
        let last = body(answer(
            "/x",
            &q(&[("limit", "2"), ("offset", "4")]),
            FILTERS,
            &NONE,
            items(),
        ))
        .await;
        assert_eq!(last["next"], Value::Null);
    }

    #[tokio::test]
    async fn filters_compare_answer_fields() {
        let r = body(answer(
            "/x",
            &q(&[("cname", "C3.example")]),
            FILTERS,
            &NONE,
            items(),
        ))
        .await;
        assert_eq!(r[0]["id"], 3);
        let r = body(answer(
            "/x",
            &q(&[("active", "false"), ("limit", "10")]),
            FILTERS,
            &NONE,
            items(),
        ))
        .await;
        assert_eq!(r["count"], 2);
        let since = rfc3339(1_700_000_000 + 4 * 86_400);
        let r = body(answer(
            "/x",
            &q(&[("min_created", &since)]),
            FILTERS,
            &NONE,
            items(),
        ))
        .await;
        assert_eq!(r.as_array().unwrap().len(), 2);
    }

    #[test]
    fn bad_parameters_are_named() {
        for (query, field, words) in [
            (vec![("bogus", "1")], "bogus", "unknown parameter bogus"),
            (vec![("rules", "1")], "rules", "not supported by Tollgate"),
            (vec![("active", "yes")], "active", "not true or false"),
            (vec![("limit", "1001")], "limit", "1 to 1000"),
            (vec![("offset", "-1")], "offset", "from 0"),
            (
                vec![("min_created", "yesterday")],
                "min_created",
                "not a time",
            ),
        ] {
            let e = answer("/x", &q(&query), FILTERS, &NONE, items()).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field));
            assert!(e.message.contains(words), "{}", e.message);
        }
    }

    #[test]
    fn a_pointer_into_every_element_of_an_array() {
        let item = json!({"sources": [{"source": "a"}, {"source": "b"}], "x": []});
        let mut found = Vec::new();
        values(&item, "/sources/*/source", &mut found);
        assert_eq!(found, [&json!("a"), &json!("b")]);
        found.clear();
        values(&item, "/missing/*/source", &mut found);
        assert!(found.is_empty());
        found.clear();
        values(&item, "/x/*/y", &mut found);
        assert!(found.is_empty());
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_time("2026-01-31"), parse_time("2026-01-31T00:00:00Z"));
        assert!(parse_time("2026-01-31T00:00:00.123+02:00").is_some());
        assert!(parse_time("31/01/2026").is_none());
    }
}
